"""Conversations: opening, listing and compare-and-set updates, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.errors import NotFound, StaleVersion
from bot.core.models import Conversation
from bot.core.state import ConversationState
from bot.store import Store
from tests.bot.store.helpers import new_conversation

S = ConversationState


async def test_open_and_list_conversations(store: Store) -> None:
    customer = await store.find_or_create_customer("webchat", "v1")
    first = await store.open_conversation(customer.id, "webchat", "v1")
    assert first.state is S.BOT and first.version == 1 and first.priority == "normal"
    assert first.team is None and first.assigned_agent_id is None
    assert first.awaiting_csat is False and first.bot_cursor == 0
    assert (first.customer_id, first.channel, first.channel_user_id) == (
        customer.id,
        "webchat",
        "v1",
    )
    assert await store.open_conversation(customer.id, "webchat", "v1") == first
    assert await store.conversation(first.id) == first
    assert await store.conversation("0" * 32) is None

    # A resolved conversation is still the newest: the caller decides what happens next.
    resolved = await store.update_conversation(first.id, 1, state=S.RESOLVED)
    assert await store.open_conversation(customer.id, "webchat", "v1") == resolved

    second = await store.create_conversation(customer.id, "webchat", "v1")
    assert second.id != first.id and second.state is S.BOT
    assert await store.open_conversation(customer.id, "webchat", "v1") == second

    await store.link_identity(customer.id, "telegram", "7")
    third = await store.open_conversation(customer.id, "telegram", "7")
    assert [c.id for c in await store.conversations_for_customer(customer.id)] == [
        third.id,
        second.id,
        first.id,
    ]

    other = await new_conversation(store, "v2")
    await store.update_conversation(other.id, 1, state=S.QUEUED)
    await store.update_conversation(third.id, 1, state=S.QUEUED)
    queued = await store.conversations_in_states([S.QUEUED])
    assert [c.id for c in queued] == [third.id, other.id]  # oldest first
    both = await store.conversations_in_states([S.QUEUED, S.RESOLVED])
    assert [c.id for c in both] == [first.id, third.id, other.id]
    assert await store.conversations_in_states([]) == []

    with pytest.raises(NotFound):
        await store.open_conversation("f" * 32, "webchat", "nobody")
    with pytest.raises(NotFound):
        await store.create_conversation("f" * 32, "webchat", "nobody")


async def test_open_conversation_is_safe_under_concurrency(store: Store) -> None:
    customer = await store.find_or_create_customer("webchat", "v1")
    opened = await asyncio.gather(
        *(store.open_conversation(customer.id, "webchat", "v1") for _ in range(10))
    )
    assert len({c.id for c in opened}) == 1
    assert len(await store.conversations_for_customer(customer.id)) == 1


async def test_update_conversation_is_compare_and_set(store: Store) -> None:
    conversation = await new_conversation(store)
    agent = await store.add_agent("ann", "Ann", "hash")

    updated = await store.update_conversation(
        conversation.id,
        1,
        state=S.QUEUED,
        team="billing",
        priority="high",
        awaiting_csat=True,
        bot_cursor=3,
    )
    assert updated.version == 2
    assert (updated.state, updated.team, updated.priority) == (S.QUEUED, "billing", "high")
    assert updated.awaiting_csat is True and updated.bot_cursor == 3
    assert updated.updated_at >= conversation.updated_at
    assert updated.created_at == conversation.created_at
    assert await store.conversation(conversation.id) == updated

    assigned = await store.update_conversation(
        conversation.id, 2, state="assigned", assigned_agent_id=agent.id
    )
    assert assigned.state is S.ASSIGNED and assigned.assigned_agent_id == agent.id
    assert assigned.version == 3
    cleared = await store.update_conversation(conversation.id, 3, team=None)
    assert cleared.team is None and cleared.version == 4

    with pytest.raises(StaleVersion):
        await store.update_conversation(conversation.id, 2, state=S.RESOLVED)
    with pytest.raises(NotFound):
        await store.update_conversation("0" * 32, 1, state=S.RESOLVED)
    with pytest.raises(ValueError, match="version"):
        await store.update_conversation(conversation.id, 4, version=9)
    with pytest.raises(ValueError):
        await store.update_conversation(conversation.id, 4, state="limbo")
    with pytest.raises(NotFound):  # enforced foreign key
        await store.update_conversation(conversation.id, 4, assigned_agent_id=987654)
    assert await store.conversation(conversation.id) == cleared  # failed updates changed nothing

    # Ten racers with the same expected version: exactly one wins.
    results = await asyncio.gather(
        *(
            store.update_conversation(conversation.id, 4, bot_cursor=i, priority=f"p{i}")
            for i in range(10)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, Conversation)]
    assert len(winners) == 1
    assert all(isinstance(r, StaleVersion) for r in results if r is not winners[0])
    final = await store.conversation(conversation.id)
    assert final is not None and final.version == 5
    assert (final.bot_cursor, final.priority) == (winners[0].bot_cursor, winners[0].priority)
