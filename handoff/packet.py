"""The handoff packet: everything an agent needs to take over a conversation without asking again.

``build_packet`` assembles it from the stored messages (the transcript), Rasa's tracker (slots)
and either the bot's handoff signal (custom payload of ``action_request_handoff``) or the name of
the gateway policy that fired. All customer-provided text in the packet — transcript, summary,
slots, facts, steps — is redacted (cards, e-mail addresses, phone numbers).

``python -m handoff.packet --schema docs/handoff-packet.schema.json`` writes the JSON schema.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel, Field

from bot.core.redact import redact, redact_value
from bot.core.types import SenderKind, StoredMessage
from handoff.sentiment import label, sentiment
from handoff.summary import summarize

PACKET_VERSION = 1

Priority = Literal["low", "normal", "high", "urgent"]
Source = Literal["bot", "policy", "agent"]
Sender = Literal["customer", "bot", "agent", "system"]

PRIORITIES: tuple[Priority, ...] = ("low", "normal", "high", "urgent")
SENTIMENT_HIGH_PRIORITY_BELOW = -0.5

# Rasa-internal slots that mean nothing to an agent.
INTERNAL_SLOTS = frozenset(
    {
        "requested_slot",
        "session_started_metadata",
        # Verification bookkeeping: the signed id and the cleared answer say nothing to an
        # agent; the customer's verified_id says it all.
        "verified_customer",
        "verification_answer",
    }
)
FACT_SLOTS = ("order_number", "product", "serial_number")

# Reason texts for the gateway's own policies (the bot's signal brings its own reason_text).
POLICY_REASON_TEXTS: dict[str, str] = {
    "explicit_request": "The customer asked to talk to a person",
    "consecutive_fallbacks": "The bot did not understand the customer {n} times in a row",
    "low_confidence": "The bot was not confident it understood the customer",
    "negative_sentiment": "The customer seems upset",
    "repeated_question": "The customer asked the same thing several times",
    "bot_unavailable": "The bot is unavailable",
    "agent_transfer": "Transferred by an agent",
    "agent_takeover": "An agent took the conversation over from the bot",
    "intent:complaint": "The customer made a complaint",
    "intent:request_human": "The customer asked to talk to a person",
}
# Reason texts of the bot's own reasons, used when a signal comes without one.
BOT_REASON_TEXTS: dict[str, str] = {
    "complaint": "Customer made a complaint",
    "customer_request": "Customer asked for a person",
    "troubleshooting_failed": "Guided troubleshooting did not fix the problem",
    "bot_did_not_understand": "The bot did not understand the customer several times in a row",
    "customer_accepted_offer": "Customer accepted the offer of a person",
    "verification_failed": "The customer could not prove an order or device is theirs",
    "needs_the_team": "The customer needs something only the team can do (a payment problem)",
}
# Policy reasons that start out above "normal" priority (legal threats, complaints).
POLICY_PRIORITIES: dict[str, Priority] = {"intent:complaint": "high"}
KEYWORD_PRIORITY: Priority = "high"


class TranscriptEntry(BaseModel):
    """One message of the conversation as the agent sees it (text redacted)."""

    seq: int = Field(description="Sequence number of the message within the conversation")
    at: datetime
    sender: Sender
    sender_name: str | None = None
    text: str
    intent: str | None = Field(default=None, description="NLU intent (customer messages only)")
    confidence: float | None = Field(default=None, description="NLU confidence of the intent")


class LinkedIdentity(BaseModel):
    """The same customer on another channel."""

    channel: str
    channel_user_id: str


class PastConversation(BaseModel):
    """An earlier contact of the customer: a handoff (in another conversation or earlier in
    this one) and how it ended, or a conversation that never reached a person."""

    conversation_id: str
    started_at: datetime = Field(description="When the handoff was asked for (or the chat began)")
    state: str = Field(description="The conversation's state now")
    reason: str | None = Field(default=None, description="Handoff reason, if it was handed off")
    resolved_at: datetime | None = None
    agent: str | None = Field(default=None, description="Who had it last")
    rating: int | None = Field(default=None, description="The customer's rating, 1-5")
    this_conversation: bool = Field(default=False, description="Earlier in this conversation")


class CustomerInfo(BaseModel):
    """Who the customer is: channel identity, VIP flag, other identities and history.

    ``verified_id`` is the shop's id of the customer once they proved who they are (the shop
    vouched for a signed-in visitor, or the bot's second factor); ``vip`` and a name from the
    shop count only then."""

    id: str
    display_name: str | None = None
    channel: str
    channel_user_id: str
    vip: bool = False
    verified_id: str | None = Field(default=None, description="The shop's id, once verified")
    verified_by: Literal["shop", "second_factor"] | None = Field(
        default=None, description="How the customer was verified"
    )
    linked_identities: list[LinkedIdentity] = Field(default_factory=list)
    past_conversations: list[PastConversation] = Field(default_factory=list)


class HandoffPacket(BaseModel):
    """Everything the agent gets when a conversation is handed over.

    ``source`` says who asked for the handoff: the bot (its handoff signal), the gateway's policy
    (fallbacks, keywords, low confidence…) or an agent (transfer). ``sentiment`` is in [-1, 1].
    """

    version: Literal[1] = 1
    conversation_id: str
    created_at: datetime
    customer: CustomerInfo
    reason: str = Field(description='Machine-readable reason, e.g. "troubleshooting_failed"')
    reason_text: str = Field(description="Human-readable reason")
    source: Source
    priority: Priority
    team: str
    transcript: list[TranscriptEntry]
    slots: dict[str, Any] = Field(description="Rasa slots that are set (internal ones dropped)")
    steps_tried: list[str] = Field(description="Troubleshooting steps the bot already went through")
    facts: dict[str, Any] = Field(description="Key facts: order number, product, serial number")
    summary: str = Field(description="Extractive summary of the conversation for the agent")
    sentiment: float = Field(ge=-1.0, le=1.0)
    sentiment_label: Literal["negative", "neutral", "positive"]


# --- building ------------------------------------------------------------------------------------


def clean_slots(slots: Mapping[str, Any] | None) -> dict[str, Any]:
    """Slots worth showing an agent: set ones only, without Rasa internals and ``_private`` ones."""
    if not slots:
        return {}
    return {
        str(k): v
        for k, v in slots.items()
        if v is not None and k not in INTERNAL_SLOTS and not str(k).startswith("_")
    }


def _trailing_fallbacks(messages: Sequence[StoredMessage]) -> int:
    count = 0
    for m in reversed(messages):
        if m.sender_kind != SenderKind.CUSTOMER:
            continue
        if m.intent != "nlu_fallback":
            break
        count += 1
    return count


def _last_customer_confidence(messages: Sequence[StoredMessage]) -> float | None:
    for m in reversed(messages):
        if m.sender_kind == SenderKind.CUSTOMER and m.confidence is not None:
            return m.confidence
    return None


def policy_reason_text(reason: str, messages: Sequence[StoredMessage] = ()) -> str:
    """Human-readable text for a gateway policy reason (``"keyword:lawyer"`` etc.)."""
    if reason == "consecutive_fallbacks":
        n = _trailing_fallbacks(messages)
        if n >= 2:
            return POLICY_REASON_TEXTS[reason].format(n=n)
        return "The bot repeatedly did not understand the customer"
    if reason == "low_confidence":
        confidence = _last_customer_confidence(messages)
        text = POLICY_REASON_TEXTS[reason]
        return f"{text} (confidence {confidence:.2f})" if confidence is not None else text
    if reason in POLICY_REASON_TEXTS:
        return POLICY_REASON_TEXTS[reason]
    if reason in BOT_REASON_TEXTS:
        return BOT_REASON_TEXTS[reason]
    kind, _, value = reason.partition(":")
    if kind == "keyword" and value:
        return f'The customer wrote "{value}"'
    if kind == "intent" and value:
        return f'The customer\'s message was recognised as "{value.replace("_", " ")}"'
    return reason.replace("_", " ").replace(":", ": ").capitalize() or "Handoff requested"


def _priority(value: Any) -> Priority:
    return cast(Priority, value) if value in PRIORITIES else "normal"


def _raise_to(priority: Priority, floor: Priority) -> Priority:
    return max(priority, floor, key=PRIORITIES.index)


def _unwrap_signal(signal: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """Accept both the signal itself and the ``{"handoff": {...}}`` custom payload around it."""
    if signal is not None and isinstance(signal.get("handoff"), Mapping) and "reason" not in signal:
        return cast(Mapping[str, Any], signal["handoff"])
    return signal


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None and str(v).strip()]
    return []


def _transcript_entry(m: StoredMessage) -> TranscriptEntry:
    return TranscriptEntry(
        seq=m.seq,
        at=m.created_at,
        sender=SenderKind(m.sender_kind).value,
        sender_name=m.sender_name,
        text=redact(m.text if m.text else (m.payload or "")),
        intent=m.intent,
        confidence=m.confidence,
    )


def _with_shop_facts(customer: CustomerInfo, signal: Mapping[str, Any] | None) -> CustomerInfo:
    """The signal's customer facts (name and VIP, from the shop's records) for a verified
    customer they belong to; anything else in the signal is not about who the customer is."""
    facts = signal.get("customer") if signal is not None else None
    if (
        not isinstance(facts, Mapping)
        or customer.verified_id is None
        or str(facts.get("id")) != customer.verified_id
    ):
        return customer
    update: dict[str, Any] = {}
    if facts.get("vip") is True:
        update["vip"] = True
    name = facts.get("name")
    if isinstance(name, str) and name.strip() and not customer.display_name:
        update["display_name"] = name.strip()[:200]
    return customer.model_copy(update=update) if update else customer


def build_packet(
    *,
    conversation_id: str,
    customer: CustomerInfo,
    messages: Sequence[StoredMessage],
    tracker: Mapping[str, Any] | None,
    signal: Mapping[str, Any] | None,
    policy_reason: str | None,
    default_team: str,
    now: datetime | None = None,
) -> HandoffPacket:
    """Assemble the handoff packet.

    * ``signal`` — the bot's handoff signal (``action_request_handoff``); when given, source is
      "bot" and reason, reason_text, priority, team, steps_tried and facts come from it.
    * ``policy_reason`` — set instead when the gateway's own policy fired ("explicit_request",
      "consecutive_fallbacks", "low_confidence", "intent:complaint", "keyword:lawyer"…); source is
      "policy" and the reason text comes from :data:`POLICY_REASON_TEXTS`.
    * ``tracker`` — Rasa's tracker JSON, for the slots (and steps/facts when the signal lacks
      them); may be None when Rasa is down.
    * ``messages`` — the stored messages of the conversation: the transcript, the customer texts
      for summary and sentiment.

    Priority is the signal's (or the policy's) priority, raised to "high" for a verified VIP or a
    sentiment below -0.5; team is the signal's team or ``default_team``. All text is redacted.
    """
    signal = _unwrap_signal(signal)
    ordered = sorted(messages, key=lambda m: m.seq)
    transcript = [_transcript_entry(m) for m in ordered]
    customer_texts = [
        m.text
        for m in ordered
        if m.sender_kind == SenderKind.CUSTOMER and m.text and not m.text.lstrip().startswith("/")
    ]

    raw_slots = tracker.get("slots") if tracker else None
    slots = clean_slots(raw_slots if isinstance(raw_slots, Mapping) else None)

    customer = _with_shop_facts(customer, signal)
    source: Source
    if signal is not None:
        source = "bot"
        reason = str(signal.get("reason") or policy_reason or "unspecified")
        reason_text = str(signal.get("reason_text") or "") or policy_reason_text(reason, ordered)
        priority = _priority(signal.get("priority"))
        team = str(signal.get("team") or default_team)
        steps_source = signal.get("steps_tried")
        facts_source = signal.get("facts")
    else:
        source = "policy"
        reason = policy_reason or "unspecified"
        reason_text = policy_reason_text(reason, ordered)
        priority = POLICY_PRIORITIES.get(reason, "normal")
        if reason.startswith("keyword:"):
            priority = KEYWORD_PRIORITY
        team = default_team
        steps_source = None
        facts_source = None

    steps_tried = _str_list(steps_source) or _str_list(slots.get("steps_tried"))
    if isinstance(facts_source, Mapping) and facts_source:
        facts = {str(k): v for k, v in facts_source.items() if v is not None and v != ""}
    else:
        facts = {k: slots[k] for k in FACT_SLOTS if slots.get(k) not in (None, "")}

    slots = cast(dict[str, Any], redact_value(slots))
    facts = cast(dict[str, Any], redact_value(facts))
    steps_tried = [redact(s) for s in steps_tried]

    score = round(sentiment(customer_texts), 3)
    if customer.vip or score < SENTIMENT_HIGH_PRIORITY_BELOW:
        priority = _raise_to(priority, "high")

    summary = summarize(
        customer_texts, reason_text=reason_text, facts=facts, steps_tried=steps_tried
    )

    return HandoffPacket(
        conversation_id=conversation_id,
        created_at=now or datetime.now(UTC),
        customer=customer,
        reason=reason,
        reason_text=redact(reason_text),
        source=source,
        priority=priority,
        team=team,
        transcript=transcript,
        slots=slots,
        steps_tried=steps_tried,
        facts=facts,
        summary=summary,
        sentiment=score,
        sentiment_label=label(score),
    )


# --- schema CLI ----------------------------------------------------------------------------------


def schema_json() -> str:
    """The packet's JSON schema as pretty-printed JSON text (with a trailing newline)."""
    schema = HandoffPacket.model_json_schema()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m handoff.packet --schema PATH`` writes the JSON schema ("-" for stdout)."""
    parser = argparse.ArgumentParser(prog="python -m handoff.packet", description=__doc__)
    parser.add_argument("--schema", metavar="PATH", required=True, help="write the JSON schema")
    args = parser.parse_args(argv)
    text = schema_json()
    if args.schema == "-":
        sys.stdout.write(text)
    else:
        path = Path(args.schema)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
