"""Abuse limits of the public web chat: sessions per address, messages per conversation (both
shared by replicas through Redis), sockets per visitor. A real gateway app; Rasa is a closed
port, so stored messages are only the customer's and the gateway's notices."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.appkeys import STORE
from bot.core.state import ConversationState
from bot.core.types import SenderKind
from connectors.webchat.limits import SocketSlots
from tests.gateway_fixtures import Gateway, gateway_settings, running_gateway
from tests.helpers import CustomerClient, dead_port

REDIS_URL = os.environ.get("CSBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LIMITS = {
    "sessions_per_minute_per_address": 3,
    "messages_per_minute_per_conversation": 2,
    "sockets_per_visitor": 2,
}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = gateway_settings(tmp_path, f"http://127.0.0.1:{dead_port()}", None, limits=LIMITS)
    async with running_gateway(settings) as gw:
        yield gw


async def _new_session(http: aiohttp.ClientSession, gw: Gateway) -> aiohttp.ClientResponse:
    async with http.post(f"{gw.url}/webchat/session", json={"token": None}) as resp:
        await resp.read()
        return resp


async def test_new_sessions_per_address_are_limited(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    statuses = [(await _new_session(http, gateway)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = await _new_session(http, gateway)
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    # A session stores nothing until its first message, refused or not.
    assert await gateway.app[STORE].conversations_in_states(list(ConversationState)) == []


async def test_a_session_is_stored_with_its_first_message_only(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    store = gateway.app[STORE]
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        assert await store.conversation(customer.conversation_id or "") is None
        await customer.send("hello")
        await customer.wait_for(lambda f: f.get("type") == "ack")
        stored = await store.conversation(customer.conversation_id or "")
        assert stored is not None
        # The same token later: the same conversation, with its history.
        again = await CustomerClient(gateway.url, http).connect(token=customer.token)
        try:
            assert again.conversation_id == customer.conversation_id
            await again.wait_for(lambda f: f.get("type") == "message" and f["text"] == "hello")
        finally:
            await again.close()
    finally:
        await customer.close()
    people = {c.customer_id for c in await store.conversations_in_states(list(ConversationState))}
    assert people == {stored.customer_id}


async def test_messages_per_conversation_are_limited_and_not_stored(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        for text in ("one", "two"):
            await customer.send(text)
            await customer.wait_for(lambda f, t=text: f.get("type") == "ack" and f["seq"] > 0)
        client_id = await customer.send("three")
        error = await customer.wait_for(lambda f: f.get("type") == "error")
        assert (error["code"], error["client_id"]) == ("rate_limited", client_id)
        stored = await gateway.app[STORE].messages(customer.conversation_id or "")
    finally:
        await customer.close()
    assert [m.text for m in stored if m.sender_kind is SenderKind.CUSTOMER] == ["one", "two"]


async def test_sockets_per_visitor_are_capped(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    first = await CustomerClient(gateway.url, http).connect()
    second = await CustomerClient(gateway.url, http).connect(token=first.token)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await CustomerClient(gateway.url, http).connect(token=first.token)
        assert refused.value.status == 429
    finally:
        await second.close()
    # A closed socket frees its place.
    third = await CustomerClient(gateway.url, http).connect(token=first.token)
    await third.close()
    await first.close()


@contextlib.asynccontextmanager
async def two_replicas(tmp_path: Path) -> AsyncIterator[tuple[Gateway, Gateway]]:
    """Two gateway apps with their own databases and one Redis (broker and counters)."""
    rasa = f"http://127.0.0.1:{dead_port()}"
    folders = [tmp_path / name for name in ("a", "b")]
    for folder in folders:
        folder.mkdir()
    a, b = (gateway_settings(f, rasa, None, limits=LIMITS, redis_url=REDIS_URL) for f in folders)
    async with running_gateway(a) as first, running_gateway(b) as second:
        yield first, second


async def test_replicas_count_sessions_together_through_redis(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with two_replicas(tmp_path) as (a, b):
        await _clear_session_counts()
        statuses = [(await _new_session(http, gw)).status for gw in (a, b, a, b)]
    assert statuses == [200, 200, 200, 429]


async def _clear_session_counts() -> None:
    """Other tests on this machine may have counted sessions from 127.0.0.1 in the shared
    Redis within the last minute: start from zero."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        async for key in client.scan_iter("csbot-webchat*session*127.0.0.1*"):
            await client.delete(key)
    finally:
        await client.aclose()


async def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    settings = gateway_settings(
        tmp_path,
        f"http://127.0.0.1:{dead_port()}",
        None,
        limits=LIMITS,
        http={"trusted_proxies": ["127.0.0.0/8"]},
    )

    async def status(forwarded: str) -> int:
        headers = {"X-Forwarded-For": forwarded}
        async with http.post(
            f"{gw.url}/webchat/session", json={"token": None}, headers=headers
        ) as resp:
            return resp.status

    async with running_gateway(settings) as gw:
        # The client is the nearest untrusted hop; what it wrote itself further left is not.
        one = [await status(f"{n}.9.9.9, 203.0.113.7") for n in range(1, 5)]
        assert one == [200, 200, 200, 429]
        assert await status("203.0.113.8") == 200  # another client behind the same proxy
        assert await status("203.0.113.8, 127.0.0.5") == 200  # a chain of trusted proxies
        # A garbled header counts against the proxy's own address, never as a free pass.
        assert [await status("not-an-address") for _ in range(4)] == [200, 200, 200, 429]


async def test_without_trusted_proxies_the_header_is_ignored(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    statuses = []
    for n in range(4):
        headers = {"X-Forwarded-For": f"198.51.100.{n}"}
        async with http.post(
            f"{gateway.url}/webchat/session", json={"token": None}, headers=headers
        ) as resp:
            statuses.append(resp.status)
    assert statuses == [200, 200, 200, 429]


async def test_replicas_cap_a_visitors_sockets_together_through_redis(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with two_replicas(tmp_path) as (a, b):
        await _clear_session_counts()
        first = await CustomerClient(a.url, http).connect()
        second = await CustomerClient(b.url, http).connect(token=first.token)
        try:
            for gw in (a, b):  # the third socket is refused on either replica
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await CustomerClient(gw.url, http).connect(token=first.token)
                assert refused.value.status == 429
        finally:
            await second.close()
        # The socket closed on b frees its place for a socket on a.
        for _ in range(50):
            try:
                third = await CustomerClient(a.url, http).connect(token=first.token)
                break
            except aiohttp.WSServerHandshakeError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the closed socket's slot was never released")
        await third.close()
        await first.close()


async def test_an_open_sockets_slot_is_counted_again_after_redis_lost_it() -> None:
    pool = aioredis.ConnectionPool.from_url(REDIS_URL)
    slots = SocketSlots(1, pool)
    client = aioredis.Redis.from_url(REDIS_URL)
    visitor = f"visitor-{uuid.uuid4().hex}"
    try:
        slot = await slots.take(visitor)
        assert slot is not None and await slots.take(visitor) is None
        await client.delete(f"csbot-webchat:sockets:{visitor}")  # a Redis restart, say
        await slots.renew(visitor, slot)  # what the open socket does every 30 s
        assert await slots.take(visitor) is None  # counted again
        await slots.release(visitor, slot)
        other = await slots.take(visitor)
        assert other is not None
        await slots.release(visitor, other)
    finally:
        await client.aclose()
        await pool.aclose()
