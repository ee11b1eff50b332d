"""Helpers of the store tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.core.models import Conversation
from bot.core.types import Direction, SenderKind, StoredMessage
from bot.store import Store


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
