"""Handoffs and the console's queue view, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.core.errors import NotFound
from bot.core.state import ConversationState
from bot.store import Store
from tests.bot.store.helpers import assert_utc, new_conversation, reply, say

S = ConversationState


async def test_handoff_lifecycle(store: Store) -> None:
    conversation = await new_conversation(store)
    agent = await store.add_agent("ann", "Ann", "hash", teams=["billing"])
    assert await store.current_handoff(conversation.id) is None

    packet = {"summary": "refund", "slots": {"order": "A-1", "items": [1, 2]}, "vip": False}
    handoff = await store.create_handoff(
        conversation.id, packet, "asked_for_human", "billing", "high"
    )
    assert (handoff.reason, handoff.team, handoff.priority) == (
        "asked_for_human",
        "billing",
        "high",
    )
    assert handoff.packet == packet
    assert handoff.assigned_at is None and handoff.resolved_at is None
    assert handoff.first_agent_reply_at is None and handoff.agent_id is None
    assert_utc(handoff.requested_at)
    assert await store.current_handoff(conversation.id) == handoff

    assigned_at = datetime.now(UTC)
    assigned = await store.update_handoff(handoff.id, assigned_at=assigned_at, agent_id=agent.id)
    assert assigned.assigned_at == assigned_at and assigned.agent_id == agent.id
    replied = await store.update_handoff(
        handoff.id, first_agent_reply_at=assigned_at + timedelta(seconds=30)
    )
    assert replied.first_agent_reply_at == assigned_at + timedelta(seconds=30)
    moved = await store.update_handoff(
        handoff.id, team="tech", priority="normal", packet={**packet, "note": "moved"}
    )
    assert (moved.team, moved.priority, moved.packet["note"]) == ("tech", "normal", "moved")
    assert await store.update_handoff(handoff.id) == moved
    resolved = await store.update_handoff(handoff.id, resolved_at=datetime.now(UTC))
    assert_utc(resolved.resolved_at)
    assert await store.current_handoff(conversation.id) is None

    second = await store.create_handoff(conversation.id, {}, "low_confidence", "general", "normal")
    assert await store.current_handoff(conversation.id) == second
    assert await store.handoffs_for_conversation(conversation.id) == [resolved, second]

    other = await new_conversation(store, "v2")
    third = await store.create_handoff(other.id, {}, "angry", "general", "urgent")
    assert await store.recent_handoffs() == [third, second, resolved]
    assert await store.recent_handoffs(limit=2) == [third, second]

    with pytest.raises(ValueError):
        await store.update_handoff(handoff.id, conversation_id=other.id)
    with pytest.raises(NotFound):
        await store.update_handoff(987654, team="x")
    with pytest.raises(NotFound):
        await store.update_handoff(987654)
    with pytest.raises(NotFound):
        await store.update_handoff(second.id, agent_id=987654)
    with pytest.raises(NotFound):
        await store.create_handoff("0" * 32, {}, "r", "t", "p")


async def test_queue_rows_join_everything_the_queue_view_shows(store: Store) -> None:
    agent = await store.add_agent("qa", "Quinn", "hash")
    named = await store.find_or_create_customer("webchat", "q1", "Nora")
    waiting = await store.open_conversation(named.id, "webchat", "q1")
    await say(store, waiting.id, "first words")
    await say(store, waiting.id, "I want a person")
    await reply(store, waiting.id, "bot reply comes later")
    old = await store.create_handoff(waiting.id, {"reason_text": "old"}, "r", "general", "normal")
    await store.update_handoff(old.id, resolved_at=datetime.now(UTC))
    handoff = await store.create_handoff(
        waiting.id, {"reason_text": "Asked for a person", "x": [1]}, "r", "general", "high"
    )
    waiting = await store.update_conversation(waiting.id, waiting.version, state=S.QUEUED)

    taken = await new_conversation(store, "q2")
    taken = await store.update_conversation(
        taken.id, taken.version, state=S.ASSIGNED, assigned_agent_id=agent.id
    )
    await new_conversation(store, "q3")  # with the bot: not in the view

    rows = await store.queue_rows([S.QUEUED, S.ASSIGNED])
    assert [r.conversation for r in rows] == [waiting, taken]
    first, second = rows
    assert first.customer_name == "Nora" and first.agent_name is None
    assert first.handoff_requested_at == handoff.requested_at
    assert first.reason_text == "Asked for a person"
    assert first.last_customer_text == "I want a person"
    assert second.customer_name is None and second.agent_name == "Quinn"
    assert second.handoff_requested_at is None and second.reason_text is None
    assert second.last_customer_text is None
    assert await store.queue_rows([]) == []
    assert [r.conversation.id for r in await store.queue_rows([S.ASSIGNED])] == [taken.id]
