"""The conversation state machine: the one place that says which moves are legal.

```
BOT ──handoff──▶ QUEUED ──claim──▶ ASSIGNED ──resolve──▶ RESOLVED ──return_to_bot──▶ BOT
                   │ no_agent   ▲             │ transfer (stays ASSIGNED)
                   │            └──requeue────┘ (to a team's queue)
                   ▼
             PENDING_FOLLOWUP ──customer_returns──▶ BOT   (or ──claim──▶ ASSIGNED,
                                                            or ──team_opens──▶ QUEUED)
```
"""

from __future__ import annotations

from enum import StrEnum


class ConversationState(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"
    PENDING_FOLLOWUP = "pending_followup"


class ConversationEvent(StrEnum):
    HANDOFF = "handoff"
    NO_AGENT = "no_agent"
    CLAIM = "claim"
    TRANSFER = "transfer"
    RESOLVE = "resolve"
    RETURN_TO_BOT = "return_to_bot"
    CUSTOMER_RETURNS = "customer_returns"
    TEAM_OPENS = "team_opens"
    REQUEUE = "requeue"


class IllegalTransition(ValueError):
    """The event is not allowed in the conversation's current state."""

    def __init__(self, state: ConversationState, event: ConversationEvent) -> None:
        super().__init__(f"cannot {event.value} a conversation in state {state.value}")
        self.state, self.event = state, event


S, E = ConversationState, ConversationEvent

TRANSITIONS: dict[tuple[ConversationState, ConversationEvent], ConversationState] = {
    (S.BOT, E.HANDOFF): S.QUEUED,
    (S.BOT, E.NO_AGENT): S.PENDING_FOLLOWUP,
    (S.QUEUED, E.CLAIM): S.ASSIGNED,
    (S.QUEUED, E.NO_AGENT): S.PENDING_FOLLOWUP,
    (S.PENDING_FOLLOWUP, E.CLAIM): S.ASSIGNED,
    (S.PENDING_FOLLOWUP, E.CUSTOMER_RETURNS): S.BOT,
    (S.PENDING_FOLLOWUP, E.TEAM_OPENS): S.QUEUED,
    (S.ASSIGNED, E.TRANSFER): S.ASSIGNED,
    (S.ASSIGNED, E.REQUEUE): S.QUEUED,
    (S.ASSIGNED, E.RESOLVE): S.RESOLVED,
    (S.RESOLVED, E.RETURN_TO_BOT): S.BOT,
}

HUMAN_STATES = frozenset({S.QUEUED, S.ASSIGNED, S.PENDING_FOLLOWUP})


def next_state(state: ConversationState, event: ConversationEvent) -> ConversationState:
    """The state after ``event``; raises IllegalTransition when the move is not allowed."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event) from None
