"""The gateway's own handoff triggers, for any Rasa bot (even one without a handoff action)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.config import HandoffPolicySettings
from bot.core.types import BotReply


@dataclass(frozen=True)
class HandoffDecision:
    """Why the conversation goes to a person: the bot's signal, or a policy reason."""

    signal: dict[str, Any] | None = None
    policy_reason: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HandoffDecision:
        """Back from ``dataclasses.asdict`` (as stored in conversations.handoff_due); fields
        of the wrong type are dropped."""
        signal, reason = data.get("signal"), data.get("policy_reason")
        return cls(
            signal=signal if isinstance(signal, dict) else None,
            policy_reason=reason if isinstance(reason, str) else None,
        )


@dataclass(frozen=True)
class Turn:
    """What NLU understood of one customer message."""

    text: str
    intent: str | None
    confidence: float | None


def bot_signal(replies: Sequence[BotReply]) -> dict[str, Any] | None:
    """The handoff payload a bot action sent ({"handoff": {...}}), if any."""
    for reply in replies:
        if reply.custom and isinstance(reply.custom.get("handoff"), dict):
            signal: dict[str, Any] = reply.custom["handoff"]
            return signal
    return None


def decide(
    policy: HandoffPolicySettings, replies: Sequence[BotReply], turns: Sequence[Turn]
) -> HandoffDecision | None:
    """Hand off when the bot asked for it, or when a policy rule fires on recent turns.

    ``turns`` are this conversation's customer turns since the bot last took over, oldest first;
    the newest is the message just answered.
    """
    signal = bot_signal(replies)
    if signal is not None:
        return HandoffDecision(signal=signal)
    if not turns:
        return None
    last = turns[-1]
    if last.intent in policy.request_intents:
        return HandoffDecision(policy_reason="explicit_request")
    if last.intent in policy.intents:
        return HandoffDecision(policy_reason=f"intent:{last.intent}")
    lowered = last.text.lower()
    for keyword in policy.keywords:
        if keyword.lower() in lowered:
            return HandoffDecision(policy_reason=f"keyword:{keyword}")
    n = policy.consecutive_fallbacks
    if n and len(turns) >= n and all(t.intent == policy.fallback_intent for t in turns[-n:]):
        return HandoffDecision(policy_reason="consecutive_fallbacks")
    k = policy.low_confidence_streak
    if (
        k
        and len(turns) >= k
        and all(
            t.confidence is not None and t.confidence < policy.low_confidence_threshold
            for t in turns[-k:]
        )
    ):
        return HandoffDecision(policy_reason="low_confidence")
    return None
