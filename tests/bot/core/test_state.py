"""Every transition of the conversation state machine, legal and illegal."""

from __future__ import annotations

import itertools

import pytest

from bot.core.state import (
    TRANSITIONS,
    ConversationEvent,
    ConversationState,
    IllegalTransition,
    next_state,
)

S, E = ConversationState, ConversationEvent

LEGAL = [
    (S.BOT, E.HANDOFF, S.QUEUED),
    (S.BOT, E.NO_AGENT, S.PENDING_FOLLOWUP),
    (S.QUEUED, E.CLAIM, S.ASSIGNED),
    (S.QUEUED, E.NO_AGENT, S.PENDING_FOLLOWUP),
    (S.PENDING_FOLLOWUP, E.CLAIM, S.ASSIGNED),
    (S.PENDING_FOLLOWUP, E.CUSTOMER_RETURNS, S.BOT),
    (S.PENDING_FOLLOWUP, E.TEAM_OPENS, S.QUEUED),
    (S.ASSIGNED, E.TRANSFER, S.ASSIGNED),
    (S.ASSIGNED, E.REQUEUE, S.QUEUED),
    (S.ASSIGNED, E.RESOLVE, S.RESOLVED),
    (S.RESOLVED, E.RETURN_TO_BOT, S.BOT),
]


@pytest.mark.parametrize(("state", "event", "expected"), LEGAL)
def test_legal_transitions(
    state: ConversationState, event: ConversationEvent, expected: ConversationState
) -> None:
    assert next_state(state, event) is expected


ILLEGAL = [
    (s, e)
    for s, e in itertools.product(ConversationState, ConversationEvent)
    if (s, e) not in {(a, b) for a, b, _ in LEGAL}
]


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_illegal_transitions_raise(state: ConversationState, event: ConversationEvent) -> None:
    with pytest.raises(IllegalTransition) as err:
        next_state(state, event)
    assert err.value.state is state and err.value.event is event
    assert state.value in str(err.value) and event.value in str(err.value)


def test_table_is_exactly_the_documented_machine() -> None:
    assert {(s, e): t for s, e, t in LEGAL} == TRANSITIONS
    assert len(ILLEGAL) == len(ConversationState) * len(ConversationEvent) - len(LEGAL)


def test_full_loop_returns_to_the_bot() -> None:
    state = S.BOT
    for event in (E.HANDOFF, E.CLAIM, E.TRANSFER, E.RESOLVE, E.RETURN_TO_BOT):
        state = next_state(state, event)
    assert state is S.BOT
