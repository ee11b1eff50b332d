"""Gateway-side handoff triggers."""

from __future__ import annotations

from bot.config import HandoffPolicySettings
from bot.core.policy import Turn, decide
from bot.core.types import BotReply
from bot.rasa_client import parse_replies

POLICY = HandoffPolicySettings()


def turns(*items: tuple[str | None, float | None]) -> list[Turn]:
    return [Turn("text", intent, conf) for intent, conf in items]


def test_bot_signal_wins() -> None:
    replies = parse_replies(
        [{"text": "connecting"}, {"custom": {"handoff": {"reason": "complaint"}}}]
    )
    decision = decide(POLICY, replies, turns(("greet", 0.9)))
    assert decision is not None and decision.signal == {"reason": "complaint"}


def test_no_trigger_on_ordinary_turns() -> None:
    assert decide(POLICY, [BotReply(text="hi")], turns(("greet", 0.99))) is None
    assert decide(POLICY, [], []) is None


def test_request_intent_listed_intent_keyword() -> None:
    d = decide(POLICY, [], turns(("request_human", 0.9)))
    assert d is not None and d.policy_reason == "explicit_request"
    d = decide(POLICY, [], turns(("complaint", 0.9)))
    assert d is not None and d.policy_reason == "intent:complaint"
    d = decide(POLICY, [], [Turn("My LAWYER will hear about this", "inform", 0.9)])
    assert d is not None and d.policy_reason == "keyword:lawyer"


def test_consecutive_fallbacks_default_two() -> None:
    assert decide(POLICY, [], turns(("greet", 0.9), ("nlu_fallback", 0.3))) is None
    d = decide(POLICY, [], turns(("nlu_fallback", 0.3), ("nlu_fallback", 0.2)))
    assert d is not None and d.policy_reason == "consecutive_fallbacks"
    off = HandoffPolicySettings(consecutive_fallbacks=0, low_confidence_streak=0)
    assert decide(off, [], turns(("nlu_fallback", 0.3), ("nlu_fallback", 0.2))) is None


def test_low_confidence_streak() -> None:
    low = [("order_status", 0.4), ("greet", 0.3), ("thanks", 0.45)]
    d = decide(POLICY, [], turns(*low))
    assert d is not None and d.policy_reason == "low_confidence"
    assert decide(POLICY, [], turns(*low[:2], ("thanks", 0.9))) is None


def test_parse_replies_buttons() -> None:
    (reply,) = parse_replies([{"text": "ok?", "buttons": [{"title": "Yes", "payload": "/affirm"}]}])
    assert reply.text == "ok?" and reply.buttons[0].payload == "/affirm"
