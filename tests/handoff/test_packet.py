"""Building the handoff packet, and its JSON schema."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core.types import Button, Direction, SenderKind, StoredMessage
from handoff.packet import (
    CustomerInfo,
    HandoffPacket,
    LinkedIdentity,
    PastConversation,
    build_packet,
    main,
    schema_json,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "docs" / "handoff-packet.schema.json"
T0 = datetime(2026, 11, 23, 14, 50, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
CARD = "4111 1111 1111 1111"

STEPS = [
    "Checked volume buttons and mute",
    "Turned off night mode and the volume limit in the app",
    "Restarted the device (unplugged for 30 seconds)",
]

SIGNAL: dict[str, Any] = {
    "version": 1,
    "reason": "troubleshooting_failed",
    "reason_text": "Guided troubleshooting did not fix the problem",
    "priority": "normal",
    "team": "tech_support",
    "topic": "sound",
    "steps_tried": STEPS,
    "facts": {"order_number": "1001", "product": "Aurora Speaker"},
    "requested_at": "2026-11-23T15:00:00+00:00",
}

TRACKER: dict[str, Any] = {
    "sender_id": "c1",
    "slots": {
        "order_number": "1001",
        "order_request": None,
        "serial_number": None,
        "product": "Aurora Speaker",
        "troubleshoot_topic": "sound",
        "steps_tried": STEPS,
        "troubleshoot_exhausted": True,
        "fallback_repeated": None,
        "handoff_reason": None,
        "requested_slot": None,
        "session_started_metadata": {"channel": "webchat"},
        "_internal": "x",
        "note": f"my card is {CARD}",
    },
    "latest_message": {"intent": {"name": "deny", "confidence": 0.97}},
    "events": [],
}

C, B = SenderKind.CUSTOMER, SenderKind.BOT
Row = tuple[SenderKind, str, str | None, float | None]

# (sender, text, intent, confidence): a speaker that is too quiet, three steps, then a person.
SCRIPT: list[Row] = [
    (C, "hi", "greet", 0.99),
    (B, "Hi! I'm the Brightline assistant. How can I help?", None, None),
    (C, "My Aurora Speaker is really quiet, even at full volume", "troubleshoot_sound", 0.93),
    (B, "Let's start simple: press volume-up a few times. Did that help?", None, None),
    (C, "no", "deny", 0.98),
    (B, "Next, open the Brightline Home app and turn off Night mode. Did that help?", None, None),
    (C, "still quiet", "deny", 0.81),
    (B, "Let's restart it: unplug the device for 30 seconds. Did that help?", None, None),
    (C, f"No. This is ridiculous, I'm so frustrated. I paid with {CARD}", "deny", 0.77),
    (B, "I'm connecting you with a member of our support team.", None, None),
]


def stored(script: list[Row]) -> list[StoredMessage]:
    messages = []
    for seq, (kind, text, intent, confidence) in enumerate(script, start=1):
        messages.append(
            StoredMessage(
                id=100 + seq,
                conversation_id="c1",
                seq=seq,
                direction=Direction.INBOUND if kind is SenderKind.CUSTOMER else Direction.OUTBOUND,
                sender_kind=kind,
                text=text,
                created_at=T0 + timedelta(seconds=20 * seq),
                sender_name="Maya" if kind is SenderKind.CUSTOMER else None,
                intent=intent,
                confidence=confidence,
            )
        )
    return messages


def customer(vip: bool = False) -> CustomerInfo:
    return CustomerInfo(
        id="cust-1",
        display_name="Maya Patel",
        channel="webchat",
        channel_user_id="visitor-42",
        vip=vip,
        linked_identities=[LinkedIdentity(channel="telegram", channel_user_id="9988")],
        past_conversations=[
            PastConversation(
                conversation_id="c0",
                started_at=T0 - timedelta(days=30),
                state="resolved",
                reason="complaint",
            )
        ],
    )


def build(**overrides: Any) -> HandoffPacket:
    kwargs: dict[str, Any] = {
        "conversation_id": "c1",
        "customer": customer(),
        "messages": stored(SCRIPT),
        "tracker": TRACKER,
        "signal": SIGNAL,
        "policy_reason": None,
        "default_team": "general",
        "now": NOW,
    }
    kwargs.update(overrides)
    return build_packet(**kwargs)


# --- with the bot's signal and the tracker --------------------------------------------------------


def test_packet_from_signal_and_tracker() -> None:
    packet = build()
    assert packet.version == 1
    assert packet.conversation_id == "c1"
    assert packet.created_at == NOW
    assert packet.source == "bot"
    assert packet.reason == "troubleshooting_failed"
    assert packet.reason_text == "Guided troubleshooting did not fix the problem"
    assert packet.team == "tech_support"
    assert packet.steps_tried == STEPS
    assert packet.facts == {"order_number": "1001", "product": "Aurora Speaker"}
    assert packet.slots == {
        "order_number": "1001",
        "product": "Aurora Speaker",
        "troubleshoot_topic": "sound",
        "steps_tried": STEPS,
        "troubleshoot_exhausted": True,
        "note": "my card is [card]",
    }
    assert packet.customer == customer()


def test_transcript_mirrors_the_stored_messages() -> None:
    packet = build(messages=list(reversed(stored(SCRIPT))))  # order comes from seq
    assert [e.seq for e in packet.transcript] == list(range(1, len(SCRIPT) + 1))
    first, second = packet.transcript[0], packet.transcript[1]
    assert (first.sender, first.sender_name, first.text) == ("customer", "Maya", "hi")
    assert (first.intent, first.confidence) == ("greet", 0.99)
    assert first.at == T0 + timedelta(seconds=20)
    assert (second.sender, second.intent, second.confidence) == ("bot", None, None)
    assert packet.transcript[8].text.endswith("I paid with [card]")


def test_summary_sentiment_and_priority() -> None:
    packet = build()
    assert packet.summary.startswith("Guided troubleshooting did not fix the problem. Customer: ")
    assert "My Aurora Speaker is really quiet, even at full volume." in packet.summary
    assert "Order 1001. Product: Aurora Speaker." in packet.summary
    assert packet.summary.endswith("Already tried: " + "; ".join(STEPS) + ".")
    assert packet.sentiment < -0.5
    assert packet.sentiment_label == "negative"
    assert packet.priority == "high"  # raised from "normal" by the sentiment


def test_priority_stays_normal_for_a_calm_customer() -> None:
    calm = [row for row in SCRIPT if "ridiculous" not in row[1]]
    packet = build(messages=stored(calm))
    assert packet.sentiment_label in ("neutral", "positive")
    assert packet.priority == "normal"


def test_vip_raises_priority_but_never_lowers_it() -> None:
    calm = stored([row for row in SCRIPT if "ridiculous" not in row[1]])
    assert build(messages=calm, customer=customer(vip=True)).priority == "high"
    urgent = {**SIGNAL, "priority": "urgent"}
    assert build(signal=urgent, customer=customer(vip=True)).priority == "urgent"
    assert build(signal={**SIGNAL, "priority": "bogus"}, messages=calm).priority == "normal"


def test_signal_wrapped_in_the_custom_payload_is_accepted() -> None:
    assert build(signal={"handoff": SIGNAL}).reason == "troubleshooting_failed"


def test_signal_without_steps_facts_or_team_falls_back() -> None:
    signal = {"version": 1, "reason": "customer_request", "priority": "normal"}
    packet = build(signal=signal)
    assert packet.team == "general"
    assert packet.reason_text == "Customer asked for a person"
    assert packet.steps_tried == STEPS  # from the tracker's slots
    assert packet.facts == {"order_number": "1001", "product": "Aurora Speaker"}


# --- without the tracker (Rasa down) --------------------------------------------------------------


def test_packet_without_tracker() -> None:
    packet = build(tracker=None)
    assert packet.slots == {}
    assert packet.steps_tried == STEPS  # the signal still has them
    assert packet.facts == {"order_number": "1001", "product": "Aurora Speaker"}
    assert len(packet.transcript) == len(SCRIPT)


def test_packet_without_tracker_or_signal() -> None:
    packet = build(tracker=None, signal=None, policy_reason="explicit_request")
    assert packet.source == "policy"
    assert packet.reason == "explicit_request"
    assert packet.reason_text == "The customer asked to talk to a person"
    assert packet.slots == {} and packet.facts == {} and packet.steps_tried == []
    assert packet.team == "general"
    assert "My Aurora Speaker is really quiet" in packet.summary
    assert "Already tried" not in packet.summary


# --- policy reasons -------------------------------------------------------------------------------


def test_packet_with_policy_reason_uses_tracker_slots() -> None:
    packet = build(signal=None, policy_reason="explicit_request")
    assert packet.source == "policy"
    assert packet.team == "general"
    assert packet.steps_tried == STEPS
    assert packet.facts == {"order_number": "1001", "product": "Aurora Speaker"}


def test_consecutive_fallbacks_reason_counts_the_fallbacks() -> None:
    script: list[Row] = [
        (C, "hi", "greet", 0.99),
        (C, "the blinky thing does the whoosh", "nlu_fallback", 0.21),
        (B, "Sorry, I didn't get that.", None, None),
        (C, "whoosh blinky", "nlu_fallback", 0.18),
        (B, "Sorry, I didn't get that.", None, None),
        (C, "blinky", "nlu_fallback", 0.3),
    ]
    packet = build(
        signal=None, tracker=None, policy_reason="consecutive_fallbacks", messages=stored(script)
    )
    assert packet.reason_text == "The bot did not understand the customer 3 times in a row"


def test_low_confidence_reason_mentions_the_confidence() -> None:
    packet = build(signal=None, policy_reason="low_confidence")
    assert packet.reason_text == (
        "The bot was not confident it understood the customer (confidence 0.77)"
    )


@pytest.mark.parametrize(
    ("reason", "text", "priority"),
    [
        ("intent:complaint", "The customer made a complaint", "high"),
        ("intent:cancel_order", 'The customer\'s message was recognised as "cancel order"', None),
        ("keyword:lawyer", 'The customer wrote "lawyer"', "high"),
        ("something_new", "Something new", None),
    ],
)
def test_other_policy_reasons(reason: str, text: str, priority: str | None) -> None:
    calm = stored([row for row in SCRIPT if "ridiculous" not in row[1]])
    packet = build(signal=None, policy_reason=reason, messages=calm)
    assert packet.reason == reason
    assert packet.reason_text == text
    assert packet.priority == (priority or "normal")


# --- redaction ------------------------------------------------------------------------------------


def test_nothing_personal_leaks_into_the_packet_json() -> None:
    script: list[Row] = [
        *SCRIPT,
        (C, "reach me at maya.patel@example.com or +44 20 7946 0958", None, None),
    ]
    signal = {
        **SIGNAL,
        "steps_tried": [*STEPS, "Sent code to +44 20 7946 0958"],
        "facts": {"order_number": "1001", "card": CARD.replace(" ", "-")},
    }
    dumped = build(messages=stored(script), signal=signal).model_dump_json()
    for secret in ("4111", "maya.patel@", "7946"):
        assert secret not in dumped
    assert "[card]" in dumped and "[email]" in dumped and "[phone]" in dumped
    assert "1001" in dumped  # the order number survives


def test_button_payload_messages() -> None:
    message = StoredMessage(
        id=1,
        conversation_id="c1",
        seq=1,
        direction=Direction.INBOUND,
        sender_kind=SenderKind.CUSTOMER,
        text="",
        created_at=T0,
        buttons=[Button("Yes", "/affirm")],
        payload="/affirm",
    )
    packet = build(messages=[message], tracker=None)
    assert packet.transcript[0].text == "/affirm"
    assert packet.sentiment == 0.0 and packet.sentiment_label == "neutral"


# --- JSON schema ----------------------------------------------------------------------------------


def _validate(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any], path: str) -> None:
    """A small JSON Schema validator for what pydantic generates ($ref, anyOf, type, const...)."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        _validate(instance, root["$defs"][name], root, path)
        return
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                _validate(instance, option, root, path)
                break
            except AssertionError as exc:
                errors.append(str(exc))
        else:
            raise AssertionError(f"{path}: matches no anyOf option: {errors}")
    types: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
        "array": list,
        "object": dict,
    }
    if "type" in schema:
        expected = types[schema["type"]]
        assert isinstance(instance, expected), f"{path}: {instance!r} is not {schema['type']}"
        if schema["type"] in ("integer", "number"):
            assert not isinstance(instance, bool), f"{path}: bool is not a number"
    if "const" in schema:
        assert instance == schema["const"], f"{path}: {instance!r} != {schema['const']!r}"
    if "enum" in schema:
        assert instance in schema["enum"], f"{path}: {instance!r} not in {schema['enum']}"
    if "minimum" in schema:
        assert instance >= schema["minimum"], f"{path}: below minimum"
    if "maximum" in schema:
        assert instance <= schema["maximum"], f"{path}: above maximum"
    if schema.get("format") == "date-time":
        datetime.fromisoformat(instance)
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            assert key in instance, f"{path}: missing required {key!r}"
        properties = schema.get("properties", {})
        for key, value in instance.items():
            if key in properties:
                _validate(value, properties[key], root, f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                _validate(value, schema["additionalProperties"], root, f"{path}.{key}")
            else:
                assert schema.get("additionalProperties", True) is not False, f"{path}.{key}"
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            _validate(item, schema["items"], root, f"{path}[{i}]")


def test_schema_file_is_up_to_date() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_json(), (
        "regenerate with: python -m handoff.packet --schema docs/handoff-packet.schema.json"
    )


@pytest.mark.parametrize("variant", ["signal", "no_tracker", "policy"])
def test_schema_validates_built_packets(variant: str) -> None:
    variants: dict[str, dict[str, Any]] = {
        "signal": {},
        "no_tracker": {"tracker": None},
        "policy": {"signal": None, "policy_reason": "keyword:lawyer"},
    }
    instance = json.loads(build(**variants[variant]).model_dump_json())
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert set(schema["required"]) <= set(instance)
    _validate(instance, schema, schema, "$")
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.validate(instance, schema)


def test_schema_rejects_a_broken_packet() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    instance = json.loads(build().model_dump_json())
    del instance["summary"]
    with pytest.raises(AssertionError, match="summary"):
        _validate(instance, schema, schema, "$")
    instance = json.loads(build().model_dump_json())
    instance["priority"] = "whenever"
    with pytest.raises(AssertionError, match="priority"):
        _validate(instance, schema, schema, "$")


def test_schema_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "schema.json"
    assert main(["--schema", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == schema_json()
    assert main(["--schema", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "HandoffPacket"


def test_schema_cli_as_module(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    subprocess.run(
        [sys.executable, "-m", "handoff.packet", "--schema", str(target)],
        cwd=ROOT,
        check=True,
    )
    assert json.loads(target.read_text(encoding="utf-8")) == json.loads(schema_json())
