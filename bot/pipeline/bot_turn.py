"""One customer message with the bot: a CSAT answer, a notice, or a turn through Rasa.

A bot turn is all or nothing: the replies, their outbox entries, the NLU of the customer's
message, the cursor move and a decided handoff (``handoff_due``) are one SQL transaction. A bot
reply that comes back after the conversation left BOT is dropped (compare-and-set on the
version). When Rasa is down the customer is told once per outage and, if it lasts, offered a
person; the message waits for the scheduler's next attempt.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import structlog

from bot.core.errors import StaleVersion
from bot.core.hours import for_the_bot
from bot.core.identity import (
    IDENTITY_PAYLOAD,
    VERIFIED_METADATA_KEY,
    parse_identity,
    verified_as,
)
from bot.core.models import Conversation, MessageNlu, OutboundDraft, PendingTurn
from bot.core.policy import Turn, decide
from bot.core.ports import HandoffDesk
from bot.core.state import ConversationState
from bot.core.types import (
    ATTACHMENT_PAYLOAD,
    EDITED_PAYLOAD,
    HANDOFF_PAYLOAD,
    SURVEY_PAYLOAD,
    UNSUPPORTED_PAYLOAD,
    Button,
    SenderKind,
    StoredMessage,
    Understood,
)
from bot.pipeline.context import Component, EngineContext
from bot.rasa_client import RasaUnavailable

log = structlog.get_logger(__name__)

# How long "the customer was told Rasa is down" is remembered (one notice per outage).
OUTAGE_MEMORY = 600.0
NOTICES = {
    ATTACHMENT_PAYLOAD: "Thanks, I've kept it. I can't look at pictures or files myself, but a "
    "person can: tell me what it's about, or say \"talk to a person\" and they'll see it.",
    UNSUPPORTED_PAYLOAD: "Sorry, I can only read text messages for now. Could you type what you "
    "need instead?",
    EDITED_PAYLOAD: "I can't see changes to messages I've already received. Please send the "
    "corrected text as a new message.",
}
CSAT_RE = re.compile(r"^\s*(?:csat:)?([1-5])(?:\s*(?:/\s*5|stars?|out of 5))?\s*[.!]?\s*$", re.I)


# Slashes and white space before the first word ("/ /intent{...}" too: Rasa strips first).
_LEADING_SLASHES = re.compile(r"^[\s/]+")


def typed_text(text: str) -> str:
    """What the customer typed, as text for the bot: Rasa reads a message that starts with "/"
    as an intent with entities (``/refund_status{"order_number": "1005"}``), so the slashes
    go. Only buttons the bot offered carry intents (see intake)."""
    stripped = _LEADING_SLASHES.sub("", text)
    return stripped if stripped.strip() else text


def csat_rating(message: StoredMessage) -> int | None:
    """A 1-5 rating from a button payload ("csat:4") or a typed digit ("4", "5 stars")."""
    for candidate in (message.payload, message.text):
        if candidate:
            match = CSAT_RE.match(candidate)
            if match:
                return int(match.group(1))
    return None


# The other survey questions: their scales, and a typed or pressed answer ("ces:6", "6").
SURVEY_SCALES = {"ces": (1, 7), "nps": (0, 10)}
_SCORE_RE = re.compile(r"^\s*(?:(ces|nps):)?(\d{1,2})\s*[.!]?\s*$", re.I)


def survey_score(message: StoredMessage, kind: str) -> int | None:
    """The answer to the ``kind`` question (csat, ces or nps) in the message, if it is one: a
    button of that question, or a number typed."""
    pressed = SURVEY_PAYLOAD.match(message.payload or "")
    if pressed:
        if pressed.group(1) != kind:
            return None
        score = int(pressed.group(2))
        low, high = SURVEY_SCALES.get(kind, (1, 5))
        return score if low <= score <= high else None
    if kind == "csat":
        return csat_rating(message)
    low, high = SURVEY_SCALES[kind]
    for candidate in (message.text,):
        match = _SCORE_RE.match(candidate or "")
        if match and (match.group(1) is None or match.group(1).lower() == kind):
            score = int(match.group(2))
            if low <= score <= high:
                return score
    return None


class BotTurn(Component):
    """Handles one pending customer message of a conversation that is with the bot."""

    def __init__(self, ctx: EngineContext, desk: HandoffDesk) -> None:
        super().__init__(ctx)
        self.desk = desk

    async def handle(
        self, conversation: Conversation, message: StoredMessage, turn: PendingTurn
    ) -> bool:
        """False when Rasa is down and the message waits for the next attempt."""
        if conversation.awaiting_csat:
            kind = conversation.awaiting_survey or "csat"
            score = survey_score(message, kind)
            if score is not None:
                await self._record_survey(conversation, message, kind, score)
                return True
            if SURVEY_PAYLOAD.match(message.payload or ""):
                # An earlier question's button pressed again: not an answer to this one, and
                # not a message for the bot either.
                await self.records.update(conversation.id, bot_cursor=message.seq)
                return True
            # Not an answer: the survey is over, and this message goes to the bot.
            conversation = await self.records.update(
                conversation.id, awaiting_csat=False, awaiting_survey=None
            )
        if message.payload in NOTICES:
            await self._answer_without_bot(conversation, message, NOTICES[message.payload])
            return True
        return await self._bot_turn(conversation, message, turn)

    async def tracker(
        self, conversation_id: str, with_events: bool = False
    ) -> dict[str, Any] | None:
        try:
            return await self.rasa.tracker(conversation_id, with_events=with_events)
        except RasaUnavailable:
            return None

    async def _answer_without_bot(
        self, conversation: Conversation, message: StoredMessage, text: str
    ) -> None:
        """Mark the message handled and answer it with a notice, in one transaction."""
        while True:
            try:
                fresh, stored = await self.store.append_outbound(
                    conversation.id,
                    [OutboundDraft(SenderKind.SYSTEM, text)],
                    outbox_channel=self.outbound.outbox_channel(conversation),
                    expected_version=conversation.version,
                    bot_cursor=message.seq,
                )
                break
            except StaleVersion:
                conversation = await self.records.get(conversation.id)
        assert fresh is not None
        await self.outbound.announce(fresh, stored)

    async def _bot_turn(
        self, conversation: Conversation, message: StoredMessage, turn: PendingTurn
    ) -> bool:
        now = self.clock()
        metadata: dict[str, Any] = {
            "channel": conversation.channel,
            "customer_id": conversation.customer_id,
            "customer_name": turn.customer_name,
            # The hours of the team a handoff goes to by default (its own, or the gateway's),
            # from gateway.yml: the bot keeps no copy (bot/core/hours.py).
            "support_hours": for_the_bot(self.settings.hours_of(None), now),
        }
        verified = verified_as(
            conversation,
            turn.customer_verified_id,
            turn.customer_verified_by,
            now,
            turn.identity_linked_by,
        )
        if verified is not None:
            # The only way the bot learns who the customer is (actions/identity.py).
            metadata[VERIFIED_METADATA_KEY] = verified[0]
        text = message.payload or typed_text(message.text)
        # The dots while Rasa answers: on the sockets first (the reply must come after them),
        # then the channel's chat action beside the Rasa call, not before it.
        await self.outbound.show_typing(conversation, "bot")
        channel_typing = asyncio.ensure_future(self.outbound.channel_typing(conversation))
        started = time.monotonic()
        try:
            answer = await self.rasa.turn(conversation.id, text, metadata)
        except RasaUnavailable as exc:
            self.metrics.bot_turns.labels("rasa_unavailable").inc()
            await self._bot_unavailable(conversation, message, exc)
            return False
        finally:
            await channel_typing  # never raises; usually done long before Rasa answers
        self.metrics.rasa_seconds.observe(time.monotonic() - started)
        tracker: dict[str, Any] | None = None
        paused = answer.paused
        if not answer.replies and paused is None:
            # (With the events: the NLU below is read from this same tracker.)
            tracker = await self.tracker(conversation.id, with_events=True)
            paused = bool(tracker and tracker.get("paused"))
        if not answer.replies and paused:
            # A person handed the conversation back but Rasa missed the resume: resume now and
            # ask again, instead of leaving the customer with a silent bot.
            try:
                await self.rasa.resume(conversation.id)
                answer = await self.rasa.turn(conversation.id, text, metadata)
            except RasaUnavailable as exc:
                await self._bot_unavailable(conversation, message, exc)
                return False
            tracker = None
        replies = answer.replies
        for reply in replies:
            if reply.custom and IDENTITY_PAYLOAD in reply.custom:
                await self._record_identity(conversation, reply.custom[IDENTITY_PAYLOAD])
        if answer.error:
            log.warning(
                "rasa failed on the message", conversation_id=conversation.id, error=answer.error
            )
        # What NLU understood is for the transcript, the packet and the gateway's policy. Rasa's
        # gateway channel sends it along; from a plain REST channel it takes a tracker read.
        nlu = answer.nlu
        if nlu is None:
            # With the events: a fallback may have reverted the message, and then the
            # tracker's latest_message is the one before it. (Already read, after this turn,
            # when it had no replies.)
            if tracker is None:
                tracker = await self.tracker(conversation.id, with_events=True)
            if tracker is not None:
                nlu = newest_user_parse(tracker)
        decision = decide(self.settings.handoff, replies, _recent_turns(turn, message, nlu))
        drafts = [
            OutboundDraft(
                SenderKind.BOT,
                reply.text or "",
                buttons=tuple(reply.buttons),
                attachment=reply.attachment,
            )
            for reply in replies
            if reply.text or reply.buttons or reply.attachment
        ]
        version = conversation.version
        while True:
            try:
                # Replies stored + queued, NLU recorded, message marked handled and a decided
                # handoff marked due: all or nothing.
                fresh, stored = await self.store.append_outbound(
                    conversation.id,
                    drafts,
                    outbox_channel=self.outbound.outbox_channel(conversation),
                    expected_version=version,
                    bot_cursor=message.seq,
                    nlu=MessageNlu(message.id, nlu.intent, nlu.confidence) if nlu else None,
                    handoff_due=asdict(decision) if decision else None,
                )
                break
            except StaleVersion:
                current = await self.records.get(conversation.id)
                if current.bot_cursor >= message.seq:
                    log.info("message already answered elsewhere", conversation_id=conversation.id)
                    return True
                if current.state is not ConversationState.BOT:
                    log.info(
                        "stale bot reply dropped",
                        conversation_id=conversation.id,
                        replies=len(replies),
                        state=current.state.value,
                    )
                    await self.records.advance_cursor(conversation.id, message.seq)
                    if nlu is not None:
                        await self.store.set_message_nlu(message.id, nlu.intent, nlu.confidence)
                    return True
                version = current.version
        assert fresh is not None
        conversation = fresh
        self.metrics.bot_turns.labels("handoff" if decision else "answered").inc()
        await self.outbound.announce(conversation, stored)
        if decision is not None:
            # SQLite calls don't yield to the event loop: let the sockets send the replies
            # before the handoff's work.
            await asyncio.sleep(0)
            if tracker is None:
                tracker = await self.tracker(conversation.id)  # the slots, for the packet
            await self.desk.start(conversation, decision, tracker)
        return True

    async def _record_identity(self, conversation: Conversation, payload: Any) -> None:
        """The bot verified the customer (a right second factor): remember it for this and
        every later conversation of theirs, on every linked channel. The payload comes from
        Rasa, which only the gateway can talk to, never from the customer."""
        verified = parse_identity(payload)
        if verified is None:
            log.warning("ignored a malformed identity payload", conversation_id=conversation.id)
            return
        await self.store.verify_conversation(conversation.id, verified.customer_id, verified.method)
        customer = await self.store.verify_customer(
            conversation.customer_id,
            verified.customer_id,
            verified.method,
            name=verified.name,
            vip=verified.vip,
        )
        if customer.verified_id == verified.customer_id:
            # This channel identity proved to be this customer: from now on it carries the
            # customer's verification even if an agent had linked it by hand. (Proved to be
            # someone else, it stays hand-linked: that person verifies per conversation.)
            await self.store.identity_verified(conversation.channel, conversation.channel_user_id)
        self.metrics.verified.labels(verified.method).inc()
        await self.store.audit(
            "bot",
            "verify_customer",
            conversation.id,
            {"customer": customer.id, "verified_id": verified.customer_id, "by": verified.method},
        )
        log.info(
            "customer verified",
            conversation_id=conversation.id,
            customer_id=customer.id,
            method=verified.method,
        )

    async def _bot_unavailable(
        self, conversation: Conversation, message: StoredMessage, exc: Exception
    ) -> None:
        """Rasa is down: tell the customer once, and offer a person if it lasts."""
        log.warning("rasa unavailable", conversation_id=conversation.id, error=str(exc))
        # Broker keys, not process memory: with several replicas retrying, the customer is
        # still told (and offered a person) once per outage.
        if await self.broker.first_seen(f"rasa-down:told:{conversation.id}", OUTAGE_MEMORY):
            await self.outbound.system_message(
                conversation,
                "Sorry, I'm having a technical problem right now. Your message is saved and I'll "
                "answer as soon as I'm back.",
            )
        waited = (self.clock() - message.created_at).total_seconds()
        if waited >= self.settings.rasa.offer_human_after_seconds and await self.broker.first_seen(
            f"rasa-down:offered:{conversation.id}:{message.seq}", OUTAGE_MEMORY
        ):
            await self.outbound.send(
                conversation,
                SenderKind.SYSTEM,
                "I'm still not back. Would you like to talk to a person instead?",
                buttons=[Button(title="Talk to a person", payload=HANDOFF_PAYLOAD)],
            )

    async def _record_survey(
        self, conversation: Conversation, message: StoredMessage, kind: str, score: int
    ) -> None:
        """Keep the answer, then ask the team's next survey question, or thank the customer."""
        handoffs = await self.store.handoffs_for_conversation(conversation.id)
        latest = max(handoffs, key=lambda h: h.requested_at) if handoffs else None
        handoff_id = latest.id if latest else None
        if kind == "csat":
            await self.store.add_csat(conversation.id, handoff_id, score)
            self.metrics.ratings.labels(str(score)).inc()
        else:
            await self.store.add_survey_answer(
                conversation.id, handoff_id, conversation.customer_id, kind, score
            )
        following = await self._next_survey(conversation, kind)
        conversation = await self.records.update(
            conversation.id,
            awaiting_csat=following is not None,
            awaiting_survey=following,
            bot_cursor=message.seq,
        )
        if following is None:
            await self.outbound.system_message(conversation, "Thank you for your feedback!")
            return
        low, high = SURVEY_SCALES[following]
        prompt = self.settings.ces_prompt if following == "ces" else self.settings.nps_prompt
        await self.outbound.send(
            conversation,
            SenderKind.SYSTEM,
            prompt,
            buttons=[Button(str(n), f"{following}:{n}") for n in range(low, high + 1)],
            payload=f"{following}_request",
        )

    async def _next_survey(self, conversation: Conversation, after: str) -> str | None:
        """The team's next question after ``after`` (the rating comes first); NPS only when
        the customer has not answered it within queue.nps_every_days."""
        asked = self.settings.queue.team(conversation.team).surveys
        if after == "csat":
            rest = list(asked)
        else:
            rest = list(asked[asked.index(after) + 1 :]) if after in asked else []
        for kind in rest:
            if kind == "nps":
                last = await self.store.last_survey_answer(conversation.customer_id, "nps")
                every = timedelta(days=self.settings.queue.nps_every_days)
                if last is not None and self.clock() - last < every:
                    continue
            return kind
        return None


def newest_user_parse(tracker: dict[str, Any]) -> Understood:
    """What NLU made of the customer's newest message, from a tracker read with its events: the
    newest ``user`` event (a core fallback reverts it, so ``latest_message`` may be older)."""
    for event in reversed(tracker.get("events") or []):
        if isinstance(event, dict) and event.get("event") == "user":
            intent = (event.get("parse_data") or {}).get("intent") or {}
            return Understood(intent.get("name"), intent.get("confidence"))
    intent = (tracker.get("latest_message") or {}).get("intent") or {}
    return Understood(intent.get("name"), intent.get("confidence"))


def _recent_turns(turn: PendingTurn, message: StoredMessage, nlu: Understood | None) -> list[Turn]:
    """Customer turns up to ``message`` since the bot last took over from a person (or the
    start), as many as the handoff policy looks at; ``message`` with ``nlu``."""
    stored = [m for m in turn.recent if m.seq <= message.seq]
    turns = [Turn(m.text, m.intent, m.confidence) for m in stored]
    if stored and stored[-1].id == message.id and nlu is not None:
        turns[-1] = Turn(message.text, nlu.intent, nlu.confidence)
    return turns
