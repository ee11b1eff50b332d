"""The conversation record, on SQLite and on PostgreSQL (every test runs on both)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.core.errors import DuplicateAgent, DuplicateMessage, NotFound, StaleVersion
from bot.core.models import Conversation, Identity, MessageNlu, OutboundDraft
from bot.core.state import ConversationState
from bot.core.types import Button, Direction, SenderKind, StoredMessage
from bot.store import SQLITE_LOOP_BLOCK_MS, Store
from tests.bot.conftest import schema_state

S = ConversationState


async def new_conversation(
    store: Store, user: str = "u1", channel: str = "webchat"
) -> Conversation:
    customer = await store.find_or_create_customer(channel, user)
    return await store.open_conversation(customer.id, channel, user)


async def say(
    store: Store, conversation_id: str, text: str, channel_message_id: str | None = None
) -> StoredMessage:
    return await store.append_message(
        conversation_id,
        direction=Direction.INBOUND,
        sender_kind=SenderKind.CUSTOMER,
        text=text,
        channel_message_id=channel_message_id,
    )


async def reply(store: Store, conversation_id: str, text: str, **kwargs: Any) -> StoredMessage:
    return await store.append_message(
        conversation_id,
        direction=Direction.OUTBOUND,
        sender_kind=SenderKind.BOT,
        text=text,
        **kwargs,
    )


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


# -- schema and connection ----------------------------------------------------------------


async def test_migrate_is_idempotent_and_matches_the_tables(db_url: str) -> None:
    stores = [await Store.connect(db_url) for _ in range(3)]
    try:
        # Several processes migrating a fresh database at once must not trip over each other.
        await asyncio.gather(*(s.migrate() for s in stores))
        store = stores[0]
        customer = await store.find_or_create_customer("webchat", "v1", "Ann")
        await store.migrate()
        await store.migrate()
        assert await store.customer(customer.id) == customer
    finally:
        for s in stores:
            await s.close()

    head, revision, diff = await schema_state(db_url)
    assert revision == head == "0003"
    assert diff == [], "bot/store.py tables and bot/migrations disagree"


async def test_connect_sets_up_the_backend(backend: str, db_url: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        assert not (tmp_path / "data").exists()
        plain = db_url
        store = await Store.connect(plain)
        assert (tmp_path / "data").is_dir()
        try:
            async with store._tx() as conn:
                pragmas = {
                    name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                    for name in ("journal_mode", "foreign_keys", "busy_timeout")
                }
            assert pragmas == {
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": SQLITE_LOOP_BLOCK_MS,
            }
        finally:
            await store.close()

        # In-memory databases work too, even with concurrent callers on the one connection.
        memory = await Store.connect("sqlite+aiosqlite://")  # older spelling, same driver
        try:
            await memory.migrate()
            conversation = await new_conversation(memory)
            await asyncio.gather(*(say(memory, conversation.id, str(i)) for i in range(20)))
            seqs = [m.seq for m in await memory.messages(conversation.id)]
            assert seqs == list(range(1, 21))
        finally:
            await memory.close()
    else:
        plain = db_url.replace("postgresql+asyncpg://", "postgresql://")
        store = await Store.connect(plain)
        try:
            async with store._tx() as conn:
                assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
            assert store._engine.dialect.driver == "asyncpg"
        finally:
            await store.close()

    with pytest.raises(ValueError, match="unsupported database"):
        await Store.connect("mysql+aiomysql://u@localhost/db")


# -- customers and identities -------------------------------------------------------------


async def test_customers_and_identities(store: Store) -> None:
    ann = await store.find_or_create_customer("telegram", "42")
    assert len(ann.id) == 32 and ann.display_name is None and ann.email is None
    assert ann.vip is False
    assert_utc(ann.created_at)

    # Same identity: same customer; a display name fills in a missing one but never overwrites.
    named = await store.find_or_create_customer("telegram", "42", "Ann")
    assert named.id == ann.id and named.display_name == "Ann"
    again = await store.find_or_create_customer("telegram", "42", "Someone Else")
    assert again == named
    assert await store.customer(ann.id) == named
    assert await store.customer("0" * 32) is None

    bob = await store.find_or_create_customer("telegram", "43", "Bob")
    assert bob.id != ann.id
    # Same user id on another channel is another person.
    assert (await store.find_or_create_customer("slack", "42")).id != ann.id

    await store.link_identity(ann.id, "webchat", "visitor-1")
    await store.link_identity(ann.id, "webchat", "visitor-1")  # linking twice is harmless
    assert (await store.find_or_create_customer("webchat", "visitor-1")).id == ann.id
    assert await store.identities(ann.id) == [
        Identity("telegram", "42"),
        Identity("webchat", "visitor-1"),
    ]

    # Linking an identity of another customer moves it over.
    await store.link_identity(ann.id, "telegram", "43")
    assert (await store.find_or_create_customer("telegram", "43")).id == ann.id
    assert await store.identities(bob.id) == []

    with pytest.raises(NotFound):
        await store.link_identity("f" * 32, "webchat", "visitor-2")


async def test_find_or_create_customer_is_safe_under_concurrency(store: Store) -> None:
    found = await asyncio.gather(
        *(store.find_or_create_customer("webchat", "same-visitor", "Ann") for _ in range(20))
    )
    assert len({c.id for c in found}) == 1
    assert await store.identities(found[0].id) == [Identity("webchat", "same-visitor")]


# -- conversations ------------------------------------------------------------------------


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


# -- messages -----------------------------------------------------------------------------


async def test_seq_is_gap_free_under_concurrent_appends(store: Store) -> None:
    conversation = await new_conversation(store)
    other = await new_conversation(store, "v2")

    async def append(i: int) -> StoredMessage:
        if i % 2:
            return await say(store, conversation.id, f"in {i}", channel_message_id=f"m{i}")
        return await reply(store, conversation.id, f"out {i}")

    stored = await asyncio.gather(
        *(append(i) for i in range(50)), *(say(store, other.id, f"o{i}") for i in range(10))
    )
    mine = stored[:50]
    assert sorted(m.seq for m in mine) == list(range(1, 51))
    assert sorted(m.seq for m in stored[50:]) == list(range(1, 11))

    listed = await store.messages(conversation.id)
    assert [m.seq for m in listed] == list(range(1, 51))
    assert sorted(listed, key=lambda m: m.id) == sorted(mine, key=lambda m: m.id)
    assert {m.text for m in listed} == {m.text for m in mine}
    # Appending is not a conversation update: the version stays put.
    assert (await store.conversation(conversation.id)) == conversation

    assert (await say(store, conversation.id, "after")).seq == 51


async def test_duplicate_inbound_message_stores_nothing(store: Store) -> None:
    conversation = await new_conversation(store)
    first = await store.append_message(
        conversation.id,
        direction=Direction.INBOUND,
        sender_kind=SenderKind.CUSTOMER,
        text="where is my order?",
        sender_name="Ann",
        payload="/order_status",
        intent="order_status",
        confidence=0.93,
        channel_message_id="update-1",
    )
    assert first.seq == 1

    with pytest.raises(DuplicateMessage) as caught:
        await say(store, conversation.id, "where is my order? (redelivered)", "update-1")
    assert caught.value.existing == first
    assert await store.messages(conversation.id) == [first]
    assert await store.find_inbound(conversation.id, "update-1") == first
    assert await store.find_inbound(conversation.id, "update-2") is None

    # The failed append gave its seq back.
    assert (await reply(store, conversation.id, "let me check")).seq == 2
    # Outbound messages and other conversations have their own id spaces.
    outbound = await reply(store, conversation.id, "echo", channel_message_id="update-1")
    assert outbound.seq == 3
    assert await store.find_inbound(conversation.id, "update-1") == first
    other = await new_conversation(store, "v2")
    assert (await say(store, other.id, "hi", "update-1")).seq == 1
    # Messages without an id are never duplicates.
    await say(store, conversation.id, "no id")
    await say(store, conversation.id, "no id")

    # Ten simultaneous deliveries of one message: stored once.
    results = await asyncio.gather(
        *(say(store, conversation.id, "again", "update-9") for _ in range(10)),
        return_exceptions=True,
    )
    stored = [r for r in results if isinstance(r, StoredMessage)]
    assert len(stored) == 1
    assert all(
        isinstance(r, DuplicateMessage) and r.existing == stored[0]
        for r in results
        if r is not stored[0]
    )
    assert [m.seq for m in await store.messages(conversation.id)] == list(range(1, 7))


async def test_messages_paging_buttons_and_nlu(store: Store) -> None:
    conversation = await new_conversation(store)
    for i in range(1, 11):
        await say(store, conversation.id, f"m{i}")
    page = await store.messages(conversation.id, after_seq=3, limit=4)
    assert [m.seq for m in page] == [4, 5, 6, 7]
    assert [m.text for m in page] == ["m4", "m5", "m6", "m7"]
    assert [m.seq for m in await store.messages(conversation.id, after_seq=7)] == [8, 9, 10]
    assert await store.messages(conversation.id, after_seq=10) == []
    assert await store.messages("0" * 32) == []

    buttons = [Button("Yes", "/affirm"), Button("No", "/deny")]
    message = await reply(store, conversation.id, "Did that help?", buttons=buttons)
    assert message.buttons == buttons
    (loaded,) = await store.messages(conversation.id, after_seq=10)
    assert loaded == message and loaded.buttons == buttons
    assert loaded.direction is Direction.OUTBOUND and loaded.sender_kind is SenderKind.BOT
    assert loaded.to_dict()["buttons"] == [b.to_dict() for b in buttons]

    first = (await store.messages(conversation.id, limit=1))[0]
    assert first.intent is None and first.buttons == []
    await store.set_message_nlu(first.id, "greet", 0.87)
    first = (await store.messages(conversation.id, limit=1))[0]
    assert first.intent == "greet" and first.confidence == pytest.approx(0.87)
    await store.set_message_nlu(first.id, None, None)
    first = (await store.messages(conversation.id, limit=1))[0]
    assert (first.intent, first.confidence) == (None, None)

    with pytest.raises(NotFound):
        await store.set_message_nlu(987654, "greet", 1.0)
    with pytest.raises(NotFound):
        await say(store, "0" * 32, "hello?")


# -- handoffs -----------------------------------------------------------------------------


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


# -- agents, notes, CSAT, audit -----------------------------------------------------------


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


# -- time ---------------------------------------------------------------------------------


async def test_timestamps_are_timezone_aware_utc(store: Store) -> None:
    before = datetime.now(UTC)
    conversation = await new_conversation(store)
    message = await say(store, conversation.id, "hi")
    handoff = await store.create_handoff(conversation.id, {}, "r", "general", "normal")
    after = datetime.now(UTC)

    loaded_conversation = await store.conversation(conversation.id)
    assert loaded_conversation is not None
    customer = await store.customer(conversation.customer_id)
    assert customer is not None
    (loaded_message,) = await store.messages(conversation.id)
    for value in (
        customer.created_at,
        loaded_conversation.created_at,
        loaded_conversation.updated_at,
        loaded_message.created_at,
        handoff.requested_at,
    ):
        assert_utc(value)
        assert before <= value <= after
    assert loaded_message.created_at == message.created_at  # microseconds survive the trip

    # Another zone goes in as the same instant and comes back as UTC.
    berlin = timezone(timedelta(hours=2))
    local = datetime(2024, 6, 1, 14, 30, 15, 123456, tzinfo=berlin)
    updated = await store.update_handoff(handoff.id, assigned_at=local)
    assert updated.assigned_at == local
    assert updated.assigned_at is not None and updated.assigned_at.tzinfo == UTC
    assert updated.assigned_at.hour == 12
    (reloaded,) = await store.handoffs_for_conversation(conversation.id)
    assert reloaded.assigned_at == local and reloaded.assigned_at is not None
    assert reloaded.assigned_at.tzinfo == UTC

    # A naive datetime is a bug in the caller; refuse it rather than guess its zone.
    with pytest.raises(ValueError, match="naive"):
        await store.update_handoff(handoff.id, resolved_at=datetime(2024, 6, 1, 12, 0))
    (unchanged,) = await store.handoffs_for_conversation(conversation.id)
    assert unchanged.resolved_at is None


async def test_last_message_by_sender(store: Store) -> None:
    customer = await store.find_or_create_customer("webchat", "last-msg")
    conversation = await store.create_conversation(customer.id, "webchat", "last-msg")
    assert await store.last_message(conversation.id, SenderKind.CUSTOMER) is None
    for text, kind, direction in [
        ("one", SenderKind.CUSTOMER, Direction.INBOUND),
        ("bot says", SenderKind.BOT, Direction.OUTBOUND),
        ("two", SenderKind.CUSTOMER, Direction.INBOUND),
        ("bot again", SenderKind.BOT, Direction.OUTBOUND),
    ]:
        await store.append_message(
            conversation.id, direction=direction, sender_kind=kind, text=text
        )
    last = await store.last_message(conversation.id, SenderKind.CUSTOMER)
    assert last is not None and (last.text, last.seq) == ("two", 3)


# -- the reads of the bot's hot path and the queue view ------------------------------------


async def test_append_inbound_returns_the_conversation_as_stored(store: Store) -> None:
    conversation = await new_conversation(store, "inbound")
    current, message = await store.append_inbound(
        conversation.id, text="hello", sender_name="Ann", payload=None, channel_message_id="m1"
    )
    assert current == await store.conversation(conversation.id)
    assert (message.seq, message.text, message.sender_kind) == (1, "hello", SenderKind.CUSTOMER)
    assert message.direction is Direction.INBOUND and message.sender_name == "Ann"
    with pytest.raises(DuplicateMessage) as dup:
        await store.append_inbound(conversation.id, text="hello again", channel_message_id="m1")
    assert dup.value.existing == message
    with pytest.raises(NotFound):
        await store.append_inbound("0" * 32, text="nobody")
    assert [m.text for m in await store.messages(conversation.id)] == ["hello"]


async def test_pending_turn_reads_conversation_customer_and_unanswered_messages(
    store: Store,
) -> None:
    customer = await store.find_or_create_customer("webchat", "pending", "Pat")
    conversation = await store.open_conversation(customer.id, "webchat", "pending")
    assert await store.pending_turn("0" * 32) is None
    first = await say(store, conversation.id, "one")
    await reply(store, conversation.id, "bot answer")
    second = await say(store, conversation.id, "two")
    turn = await store.pending_turn(conversation.id)
    assert turn is not None
    assert turn.conversation == await store.conversation(conversation.id)
    assert turn.customer_name == "Pat"
    assert turn.pending == [first, second]  # outbound messages are not pending

    assert turn.recent == []  # not asked for
    with_recent = await store.pending_turn(conversation.id, recent_turns=5)
    assert with_recent is not None and with_recent.recent == [first]  # up to the first pending

    moved = await store.update_conversation(conversation.id, conversation.version, bot_cursor=1)
    turn = await store.pending_turn(conversation.id, recent_turns=5)
    assert turn is not None and turn.conversation == moved and turn.pending == [second]
    assert turn.recent == [first, second]
    assert (await store.pending_turn(conversation.id, recent_turns=1)).recent == [second]  # type: ignore[union-attr]


async def test_recent_customer_turns_start_after_the_rating_prompt(store: Store) -> None:
    conversation = await new_conversation(store, "turns")
    for text in ("a", "b", "c"):
        await say(store, conversation.id, text)
        await reply(store, conversation.id, f"re {text}")
    turns = await store.recent_customer_turns(conversation.id, upto_seq=6, limit=2)
    assert [m.text for m in turns] == ["b", "c"]
    turns = await store.recent_customer_turns(conversation.id, upto_seq=4, limit=10)
    assert [m.text for m in turns] == ["a", "b"]
    await store.append_message(
        conversation.id,
        direction=Direction.OUTBOUND,
        sender_kind=SenderKind.SYSTEM,
        text="How did we do?",
        payload="csat_request",
    )
    await say(store, conversation.id, "d")
    turns = await store.recent_customer_turns(conversation.id, upto_seq=8, limit=10)
    assert [m.text for m in turns] == ["d"]
    # Up to a seq before the prompt, the earlier turns still count.
    turns = await store.recent_customer_turns(conversation.id, upto_seq=6, limit=10)
    assert [m.text for m in turns] == ["a", "b", "c"]


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


async def test_append_outbound_is_one_compare_and_set_turn(store: Store) -> None:
    conversation = await new_conversation(store, "turn", channel="telegram")
    question = await say(store, conversation.id, "where is my order?")
    drafts = [
        OutboundDraft(SenderKind.BOT, "Let me look.", buttons=(Button("OK", "/ok"),)),
        OutboundDraft(SenderKind.BOT, "It's on its way."),
    ]
    fresh, stored = await store.append_outbound(
        conversation.id,
        drafts,
        outbox_channel="telegram",
        expected_version=conversation.version,
        bot_cursor=question.seq,
    )
    assert fresh is not None
    assert (fresh.version, fresh.bot_cursor) == (conversation.version + 1, question.seq)
    assert fresh.updated_at >= conversation.updated_at
    assert_utc(fresh.updated_at)
    assert [(m.seq, m.text, m.direction) for m in stored] == [
        (2, "Let me look.", Direction.OUTBOUND),
        (3, "It's on its way.", Direction.OUTBOUND),
    ]
    assert stored[0].buttons == [Button("OK", "/ok")]
    assert await store.messages(conversation.id, after_seq=1) == stored
    items = await store.outbox_items(conversation.id)
    assert [(i.message_id, i.channel, i.attempts) for i in items] == [
        (stored[0].id, "telegram", 0),
        (stored[1].id, "telegram", 0),
    ]

    # The cursor never moves back; without a cursor only the version moves.
    back, _ = await store.append_outbound(
        conversation.id, [], expected_version=fresh.version, bot_cursor=1
    )
    assert back is not None and back.bot_cursor == question.seq
    touched, none = await store.append_outbound(conversation.id, [], expected_version=back.version)
    assert touched is not None and none == [] and touched.version == back.version + 1

    # A stale version stores nothing at all.
    with pytest.raises(StaleVersion):
        await store.append_outbound(
            conversation.id,
            [OutboundDraft(SenderKind.BOT, "late")],
            outbox_channel="telegram",
            expected_version=fresh.version,
            bot_cursor=question.seq,
        )
    assert [m.text for m in await store.messages(conversation.id)][-1] == "It's on its way."
    assert len(await store.outbox_items(conversation.id)) == 2

    # Without a version it only appends (no conversation returned), and no outbox channel: none.
    unversioned, (note,) = await store.append_outbound(
        conversation.id, [OutboundDraft(SenderKind.SYSTEM, "notice")]
    )
    assert unversioned is None and note.seq == 4
    assert len(await store.outbox_items(conversation.id)) == 2
    with pytest.raises(NotFound):
        await store.append_outbound("0" * 32, [OutboundDraft(SenderKind.BOT, "x")])


async def test_a_turn_records_nlu_and_a_due_handoff_until_it_starts(store: Store) -> None:
    conversation = await new_conversation(store, "due")
    question = await say(store, conversation.id, "I want a person")
    due = {"signal": {"reason": "customer_request"}, "policy_reason": None}
    with pytest.raises(ValueError, match="handoff_due"):
        await store.append_outbound(conversation.id, [], handoff_due=due)
    fresh, _ = await store.append_outbound(
        conversation.id,
        [OutboundDraft(SenderKind.BOT, "Connecting you.")],
        expected_version=conversation.version,
        bot_cursor=question.seq,
        nlu=MessageNlu(question.id, "request_human", 0.97),
        handoff_due=due,
    )
    assert fresh is not None and fresh.handoff_due == due
    stored = await store.message(question.id)
    assert stored is not None and (stored.intent, stored.confidence) == ("request_human", 0.97)
    assert await store.conversations_with_handoff_due() == [fresh]

    # A later turn without a decision does not clear it; only the handoff's own change does.
    again = await say(store, conversation.id, "hello?")
    later, _ = await store.append_outbound(
        conversation.id, [], expected_version=fresh.version, bot_cursor=again.seq
    )
    assert later is not None and later.handoff_due == due
    queued = await store.update_conversation(
        conversation.id, later.version, state=S.QUEUED, handoff_due=None
    )
    assert queued.handoff_due is None
    assert await store.conversations_with_handoff_due() == []

    # Only conversations still with the bot are listed.
    other = await new_conversation(store, "due-2")
    first = await say(store, other.id, "agent please")
    marked, _ = await store.append_outbound(
        other.id, [], expected_version=other.version, bot_cursor=first.seq, handoff_due=due
    )
    assert marked is not None
    assert [c.id for c in await store.conversations_with_handoff_due()] == [other.id]
    await store.update_conversation(other.id, marked.version, state=S.ASSIGNED)
    assert await store.conversations_with_handoff_due() == []
