"""Messages: gap-free seqs, inbound dedupe, paging, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.errors import DuplicateMessage, NotFound
from bot.core.types import Button, Direction, SenderKind, StoredMessage
from bot.store import Store
from tests.bot.store.helpers import new_conversation, reply, say


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
