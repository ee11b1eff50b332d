"""Agents, notes, CSAT ratings and the audit trail, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from bot.core.errors import DuplicateAgent, NotFound
from bot.store import Store
from tests.bot.store.helpers import assert_utc, new_conversation


async def test_agents(store: Store) -> None:
    ann = await store.add_agent("ann", "Ann A.", "hash-1", teams=["billing", "tech"])
    assert (ann.username, ann.display_name, ann.password_hash) == ("ann", "Ann A.", "hash-1")
    assert ann.role == "agent" and ann.teams == ["billing", "tech"]
    assert_utc(ann.created_at)
    boss = await store.add_agent("boss", "The Boss", "hash-2", role="admin")
    assert boss.role == "admin" and boss.teams == []

    with pytest.raises(DuplicateAgent):
        await store.add_agent("ann", "Another Ann", "hash-3")

    assert await store.agent(ann.id) == ann
    assert await store.agent(987654) is None
    assert await store.agent_by_username("boss") == boss
    assert await store.agent_by_username("nobody") is None
    assert await store.agents() == [ann, boss]

    await store.set_agent_password(ann.id, "hash-new")
    changed = await store.agent(ann.id)
    assert changed is not None and changed.password_hash == "hash-new"
    with pytest.raises(NotFound):
        await store.set_agent_password(987654, "x")


async def test_notes(store: Store) -> None:
    conversation = await new_conversation(store)
    ann = await store.add_agent("ann", "Ann", "hash")
    bob = await store.add_agent("bob", "Bob", "hash")

    first = await store.add_note(conversation.id, ann.id, "called the warehouse")
    assert (first.agent_id, first.agent_name, first.text) == (ann.id, "Ann", "called the warehouse")
    assert_utc(first.created_at)
    second = await store.add_note(conversation.id, bob.id, "refund issued")
    assert await store.notes(conversation.id) == [first, second]
    assert await store.notes((await new_conversation(store, "v2")).id) == []

    with pytest.raises(NotFound):
        await store.add_note(conversation.id, 987654, "who am I")
    with pytest.raises(NotFound):
        await store.add_note("0" * 32, ann.id, "where am I")


async def test_csat(store: Store) -> None:
    conversation = await new_conversation(store)
    handoff = await store.create_handoff(conversation.id, {}, "r", "general", "normal")

    for bad in (0, 6, -1, True, 4.5, "5"):
        with pytest.raises(ValueError):
            await store.add_csat(conversation.id, handoff.id, bad)  # type: ignore[arg-type]
    assert await store.csat_for(conversation.id) == []

    rated = await store.add_csat(conversation.id, handoff.id, 5)
    assert (rated.conversation_id, rated.handoff_id, rated.rating) == (
        conversation.id,
        handoff.id,
        5,
    )
    assert_utc(rated.created_at)
    bot_only = await store.add_csat(conversation.id, None, 1)
    assert await store.csat_for(conversation.id) == [rated, bot_only]

    with pytest.raises(NotFound):
        await store.add_csat(conversation.id, 987654, 3)
    with pytest.raises(NotFound):
        await store.add_csat("0" * 32, None, 3)


async def test_audit(store: Store) -> None:
    conversation = await new_conversation(store)
    other = await new_conversation(store, "v2")
    await store.audit("agent:ann", "claim", conversation.id, {"team": "billing", "n": [1, 2]})
    await store.audit("system", "sla_breach", other.id)
    await store.audit("agent:ann", "login")
    await store.audit("bot", "handoff", conversation.id)

    log = await store.audit_log(conversation.id)
    assert [(e["actor"], e["action"], e["details"]) for e in log] == [
        ("agent:ann", "claim", {"team": "billing", "n": [1, 2]}),
        ("bot", "handoff", {}),
    ]
    assert all(e["conversation_id"] == conversation.id for e in log)
    assert log[0]["id"] < log[1]["id"]
    for entry in log:
        assert_utc(entry["created_at"])
    assert await store.audit_log("0" * 32) == []
