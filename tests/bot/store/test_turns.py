"""The reads and writes of the bot's hot path, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from bot.core.errors import DuplicateMessage, NotFound, StaleVersion
from bot.core.models import MessageNlu, OutboundDraft
from bot.core.state import ConversationState
from bot.core.types import Button, Direction, SenderKind
from bot.store import Store
from tests.bot.store.helpers import assert_utc, new_conversation, reply, say

S = ConversationState


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
