"""Many messages into ONE conversation at the same moment: each stored once, seqs without gaps,
and the bot answers them one at a time in the order they were stored.

The bot is a stub that echoes the text, so every answer names its question. In the first test
the 50 sockets of one visitor are spread over two gateway processes (shared PostgreSQL and a
private Redis), so the per-conversation lock and cursor are exercised across processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.reliability.support import (
    Database,
    Gateways,
    RedisServer,
    StubRasa,
    WidgetClient,
    assert_gap_free,
    inbound,
    outbound,
    wait_until,
    write_gateway_config,
)

SENDERS = 50


@pytest.fixture
async def many_sockets_http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session without a connection limit (50 websockets stay open at once)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        yield http


async def test_fifty_sockets_of_one_visitor_on_two_replicas_send_at_once(
    database: Database,
    gateways: Gateways,
    private_redis: RedisServer,
    stub_rasa: StubRasa,
    tmp_path: Path,
    many_sockets_http: aiohttp.ClientSession,
) -> None:
    config = write_gateway_config(tmp_path / "gateway.yml")
    env = {"DATABASE_URL": database.url, "REDIS_URL": private_redis.url, "RASA_URL": stub_rasa.url}
    a, b = gateways.create("a", config, **env), gateways.create("b", config, **env)
    await gateways.start_many(a, b)

    first = await WidgetClient(a.url, many_sockets_http).start()
    others = await asyncio.gather(
        *(
            WidgetClient((a, b)[n % 2].url, many_sockets_http, token=first.token).start()
            for n in range(1, SENDERS)
        )
    )
    sockets = [first, *others]
    cid = first.conversation_id
    assert cid is not None and {s.conversation_id for s in sockets} == {cid}
    try:
        # Everyone fires at the same moment, one message each.
        await asyncio.gather(*(s.send(f"question {n}") for n, s in enumerate(sockets)))
        await asyncio.gather(*(s.wait_all_acked() for s in sockets))

        async def all_answered() -> bool:
            return len(outbound(await database.messages(cid), "bot")) >= SENDERS

        await wait_until(all_answered, 30, f"{SENDERS} bot answers in the database")
        await asyncio.sleep(0.5)  # room for anything extra to show up

        messages = await database.messages(cid)
        assert_gap_free(messages)
        questions = inbound(messages)
        assert sorted(m.text for m in questions) == sorted(f"question {n}" for n in range(SENDERS))
        assert len({m.channel_message_id for m in questions}) == SENDERS
        # Each socket's ack names the seq its message was stored under.
        for sock in sockets:
            ((client_id, seq),) = sock.acked.items()
            assert [m.seq for m in questions if m.channel_message_id == client_id] == [seq]

        stored_order = [m.text for m in questions]
        expected_answers = [f"echo: {text}" for text in stored_order]
        assert [m.text for m in outbound(messages, "bot")] == expected_answers
        assert stub_rasa.texts_for(cid) == stored_order, "Rasa got each message once, in order"

        async with database.store() as store:
            conversation = await store.conversation(cid)
        assert conversation is not None and conversation.bot_cursor == questions[-1].seq

        # Every socket, on either replica, shows every answer once, in the stored order, and
        # stayed connected (frames skipping a seq make it sync, as widget.js does).
        async def every_socket_has_all() -> bool:
            return all(len(s.texts("bot")) == SENDERS for s in sockets)

        await wait_until(every_socket_has_all, 10, "all answers on every socket")
        for sock in sockets:
            assert sock.texts("bot") == expected_answers
            assert sock.stats.connects == 1 and not sock.stats.anomalies and not sock.errors
    finally:
        await asyncio.gather(*(s.close() for s in sockets))


async def test_one_socket_firing_fifty_messages_without_waiting(
    database: Database,
    gateways: Gateways,
    stub_rasa: StubRasa,
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    config = write_gateway_config(tmp_path / "gateway.yml")
    gateway = await gateways.start("a", config, DATABASE_URL=database.url, RASA_URL=stub_rasa.url)
    customer = await WidgetClient(gateway.url, http).start()
    try:
        sent = [f"burst {n}" for n in range(SENDERS)]
        for text in sent:  # no waiting for acks in between
            await customer.send(text)
        await customer.wait_all_acked()
        expected = [f"echo: {text}" for text in sent]
        await wait_until(
            lambda: len(customer.texts("bot")) == SENDERS, 30, "all answers on the socket"
        )
        await asyncio.sleep(0.3)

        cid = customer.conversation_id or ""
        messages = await database.messages(cid)
        assert_gap_free(messages)
        assert [m.text for m in inbound(messages)] == sent, "stored in the order sent"
        assert [customer.acked[o.client_id] for o in customer.sent] == [
            m.seq for m in inbound(messages)
        ]
        assert [m.text for m in outbound(messages, "bot")] == expected
        assert stub_rasa.texts_for(cid) == sent
        assert customer.texts("bot") == expected
        assert not customer.stats.anomalies and not customer.errors
    finally:
        await customer.close()
