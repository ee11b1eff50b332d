"""The schema: the tables agree with the migrations, and timestamps are timezone-aware UTC
(every test runs on SQLite and on PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.store import Store
from tests.bot.conftest import schema_state
from tests.bot.store.helpers import assert_utc, new_conversation, say


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
    assert revision == head == "0015"
    assert diff == [], "bot/store.py tables and bot/migrations disagree"


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
