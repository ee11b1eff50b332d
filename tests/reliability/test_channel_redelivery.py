"""Telegram and Slack re-deliver what they think we missed: the same update or event, again and
sometimes at the same moment, possibly to another replica. It must be stored and answered once.

Two gateway subprocesses (one PostgreSQL, a private Redis) with both channels configured against
the fakes in tests/fakes/; the bot is a stub that echoes, so each answer names its question.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bot.core.models import Conversation
from bot.core.state import ConversationState
from bot.core.types import SenderKind, StoredMessage
from tests.fakes.slack_api import CUSTOMER_DM, FakeSlackApi, SlackSender
from tests.fakes.telegram_api import TOKEN, FakeTelegramApi, load_update
from tests.reliability.support import (
    Database,
    GatewayProcess,
    Gateways,
    RedisServer,
    StubRasa,
    wait_until,
    write_gateway_config,
)

TELEGRAM_SECRET = "tg-secret_for-reliability-0123"
SLACK_SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHAT = 515151
COPIES = 8  # deliveries of the same update at once, spread over both replicas


@dataclass
class Channels:
    """The fake Telegram and Slack APIs and two gateway replicas configured for both."""

    telegram: FakeTelegramApi
    slack: FakeSlackApi
    a: GatewayProcess
    b: GatewayProcess

    @property
    def urls(self) -> list[str]:
        return [self.a.url, self.b.url]


@pytest.fixture
async def channels(
    database: Database,
    gateways: Gateways,
    private_redis: RedisServer,
    stub_rasa: StubRasa,
    tmp_path: Path,
) -> AsyncIterator[Channels]:
    async with FakeTelegramApi() as telegram, FakeSlackApi() as slack:
        config = write_gateway_config(
            tmp_path / "gateway.yml",
            channels={
                "telegram": {
                    "token": TOKEN,
                    "api_base_url": telegram.url,
                    "public_url": "https://csbot.example.com/",
                    "secret_token": TELEGRAM_SECRET,
                },
                "slack": {
                    "bot_token": slack.token,
                    "signing_secret": SLACK_SIGNING_SECRET,
                    "api_base_url": slack.api_url,
                },
            },
        )
        env = {
            "DATABASE_URL": database.url,
            "REDIS_URL": private_redis.url,
            "RASA_URL": stub_rasa.url,
        }
        a, b = gateways.create("a", config, **env), gateways.create("b", config, **env)
        await gateways.start_many(a, b)
        yield Channels(telegram, slack, a, b)
        await gateways.close()  # before the fakes go away


async def conversations_on(database: Database, channel: str) -> list[Conversation]:
    """Every conversation of ``channel``, oldest first."""
    async with database.store() as store:
        every = await store.conversations_in_states(list(ConversationState))
    return [c for c in every if c.channel == channel]


async def customer_messages(database: Database, conversation_id: str) -> list[StoredMessage]:
    """What the customer wrote in the conversation, by seq."""
    return [
        m for m in await database.messages(conversation_id) if m.sender_kind is SenderKind.CUSTOMER
    ]


async def test_the_same_telegram_update_many_times_at_once_is_processed_once(
    channels: Channels, database: Database, stub_rasa: StubRasa
) -> None:
    api = channels.telegram
    first = load_update("text", update_id=api.next_update_id(), chat_id=CHAT, text="hello there")
    second = load_update("text", update_id=api.next_update_id(), chat_id=CHAT, text="second one")

    # The first update of a new chat (customer and conversation are created on the way),
    # delivered COPIES times at once, alternating between the replicas.
    results = await asyncio.gather(
        *(api.post_to_webhook(channels.urls[i % 2], first) for i in range(COPIES))
    )
    assert [status for status, _, _ in results] == [200] * COPIES, results
    # Later redeliveries, one by one, and a new update twice at once.
    for url in channels.urls:
        status, _, _ = await api.post_to_webhook(url, first)
        assert status == 200
    results = await asyncio.gather(*(api.post_to_webhook(url, second) for url in channels.urls))
    assert [status for status, _, _ in results] == [200, 200]

    await api.wait_for_text(CHAT, "echo: second one")
    await asyncio.sleep(1.0)  # room for a second answer to show up
    (conversation,) = await conversations_on(database, "telegram")
    stored = await customer_messages(database, conversation.id)
    assert [(m.text, m.channel_message_id) for m in stored] == [
        ("hello there", f"u{first['update_id']}"),
        ("second one", f"u{second['update_id']}"),
    ]
    assert api.sent_texts(CHAT) == ["echo: hello there", "echo: second one"]
    assert stub_rasa.texts_for(conversation.id) == ["hello there", "second one"]
    async with database.store() as store:
        (item_one, item_two) = await store.outbox_items(conversation.id)
    assert item_one.delivered_at is not None and item_two.delivered_at is not None


async def test_the_same_slack_event_many_times_at_once_is_processed_once(
    channels: Channels, database: Database, stub_rasa: StubRasa
) -> None:
    async with aiohttp.ClientSession() as http:
        senders = [SlackSender(url, SLACK_SIGNING_SECRET, http) for url in channels.urls]
        first = senders[0].dm_event("is anybody there?")
        second = senders[0].dm_event("hello again")

        # Slack's own retries carry X-Slack-Retry-Num; a duplicate can also come without it
        # (two deliveries racing). Half of each, at once, on both replicas.
        results = await asyncio.gather(
            *(senders[i % 2].send_event(first, retry_num=(i // 2) or None) for i in range(COPIES))
        )
        assert [r.status for r in results] == [200] * COPIES, [r.text for r in results]
        for n, sender in enumerate(senders, start=COPIES):
            assert (await sender.send_event(first, retry_num=n)).status == 200
        results = await asyncio.gather(*(s.send_event(second) for s in senders))
        assert [r.status for r in results] == [200, 200]

    slack = channels.slack
    await slack.wait_for_post(lambda c: c.params.get("text") == "echo: hello again")
    await asyncio.sleep(1.0)  # room for a second answer to show up
    (conversation,) = await conversations_on(database, "slack")
    assert conversation.channel_user_id == CUSTOMER_DM
    stored = await customer_messages(database, conversation.id)
    assert [(m.text, m.channel_message_id) for m in stored] == [
        ("is anybody there?", first["event_id"]),
        ("hello again", second["event_id"]),
    ]
    assert [c.params.get("text") for c in slack.posts(CUSTOMER_DM)] == [
        "echo: is anybody there?",
        "echo: hello again",
    ]
    assert stub_rasa.texts_for(conversation.id) == ["is anybody there?", "hello again"]


async def test_first_contacts_of_many_telegram_chats_at_once_make_one_conversation_each(
    channels: Channels, database: Database
) -> None:
    """Concurrent first messages of different chats, each delivered twice at once."""
    api = channels.telegram
    chats = [CHAT + n for n in range(1, 11)]
    updates = [
        load_update("text", update_id=api.next_update_id(), chat_id=chat, text=f"hi from {chat}")
        for chat in chats
    ]
    results = await asyncio.gather(
        *(api.post_to_webhook(url, update) for update in updates for url in channels.urls)
    )
    assert {status for status, _, _ in results} == {200}

    async def all_answered() -> bool:
        return all(api.sent_texts(chat) for chat in chats)

    await wait_until(all_answered, 20, "an answer in every chat")
    await asyncio.sleep(1.0)
    conversations = await conversations_on(database, "telegram")
    assert sorted(c.channel_user_id for c in conversations) == sorted(str(c) for c in chats)
    for chat in chats:
        assert api.sent_texts(chat) == [f"echo: hi from {chat}"]
