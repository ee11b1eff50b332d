"""Redis specifics: one shared pub/sub connection, foreign payloads, races, idempotent
scripts, an unreachable server."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis.asyncio as aioredis

from bot.broker import BrokerError, LockTimeout, RedisBroker, _PubSubHub, _Topic
from tests.bot.broker.support import _is, _numsub, _pubsub_clients, eventually, unique_prefix
from tests.helpers import dead_port


async def test_redis_one_pubsub_connection_for_many_subscribers(redis_url: str) -> None:
    prefix = unique_prefix()
    broker = RedisBroker(redis_url, prefix=prefix)
    try:
        subs = [await broker.subscribe(f"topic-{n % 50}") for n in range(200)]
        clients = await _pubsub_clients(redis_url, prefix)
        assert len(clients) == 1
        assert int(clients[0]["sub"]) == 50
        assert await _numsub(redis_url, f"{prefix}events:topic-0") == 1

        await broker.publish("topic-0", {"n": 1})
        topic_0 = [s for s in subs if s.topic == "topic-0"]
        assert len(topic_0) == 4
        for sub in topic_0:
            assert await sub.get(timeout=5) == {"n": 1}

        # The Redis channel is unsubscribed only when its last local subscriber closes.
        for sub in topic_0[:-1]:
            await sub.close()
        assert await _numsub(redis_url, f"{prefix}events:topic-0") == 1
        await topic_0[-1].close()
        await eventually(lambda: _is(_numsub(redis_url, f"{prefix}events:topic-0"), 0))
        assert await _numsub(redis_url, f"{prefix}events:topic-1") == 1
    finally:
        await broker.close()
    await eventually(lambda: _is(_pubsub_clients(redis_url, prefix), []))


async def test_redis_foreign_payloads_are_skipped(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = unique_prefix()
    broker = RedisBroker(redis_url, prefix=prefix)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        sub = await broker.subscribe("room")
        with caplog.at_level(logging.WARNING, logger="bot.broker"):
            await raw.publish(f"{prefix}events:room", b"not json")
            await raw.publish(f"{prefix}events:room", b"[1, 2]")
            await broker.publish("room", {"n": 1})
            assert await sub.get(timeout=5) == {"n": 1}
        assert sum("non-object event" in r.getMessage() for r in caplog.records) == 2
    finally:
        await raw.aclose()
        await broker.close()


async def test_redis_subscribe_and_unsubscribe_races(redis_url: str) -> None:
    """Rapid subscribe/close cycles on one topic never leave a returned subscription deaf."""
    prefix = unique_prefix()
    broker = RedisBroker(redis_url, prefix=prefix)
    publisher = RedisBroker(redis_url, prefix=prefix)
    try:
        for n in range(30):
            first, second = await asyncio.gather(broker.subscribe("t"), broker.subscribe("t"))
            await first.close()
            await publisher.publish("t", {"n": n})
            assert await second.get(timeout=5) == {"n": n}
            await second.close()
        await eventually(lambda: _is(_numsub(redis_url, f"{prefix}events:t"), 0))
    finally:
        await broker.close()
        await publisher.close()


async def test_stale_subscribe_confirmation_is_not_taken_for_a_new_one() -> None:
    """After SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE of one topic only the third reply confirms it.

    Unobservable against a local Redis (it answers all three at once), so this drives the
    reader's dispatch directly with the replies Redis would send.
    """
    hub = _PubSubHub(
        aioredis.Redis(),  # never connected: only _dispatch runs
        "p:events:",
        queue_size=10,
        ping_interval=15,
        reconnect_min=0.05,
        reconnect_max=1,
        subscribe_timeout=1,
    )
    state = _Topic()
    hub._topics["t"] = state
    hub._inflight["t"] = 3
    for kind in ("subscribe", "unsubscribe"):
        hub._dispatch({"type": kind, "channel": b"p:events:t", "data": 1})
        assert not state.confirmed.is_set()
    hub._dispatch({"type": "subscribe", "channel": b"p:events:t", "data": 1})
    assert state.confirmed.is_set()
    assert hub._inflight == {}


async def test_redis_scripts_are_idempotent_under_retry(redis_url: str) -> None:
    """A command retried after its reply was lost (same token) still reports its own success.

    This is what makes "retry once on ConnectionError" safe for remove/first_seen/lock: the
    winner of a ZREM or SET NX whose reply vanished with the connection is not turned into a
    loser (which would leave a claimed conversation with no owner, or drop a new message).
    """
    broker = RedisBroker(redis_url, prefix=unique_prefix())
    try:
        await broker.enqueue("q", "conv", 1)
        queue, receipt = broker._key("queue", "q"), broker._key("removed", "1:q:conv")
        mine, theirs = ["conv", "token-a", 60_000], ["conv", "token-b", 60_000]
        assert await broker._remove(keys=[queue, receipt], args=mine) == 1
        assert await broker._remove(keys=[queue, receipt], args=mine) == 1  # the retry
        assert await broker._remove(keys=[queue, receipt], args=theirs) == 0
        assert await broker.remove("q", "conv") is False

        seen = broker._key("seen", "update-1")
        assert await broker._claim(keys=[seen], args=["token-a", 60_000]) == 1
        assert await broker._claim(keys=[seen], args=["token-a", 60_000]) == 1  # the retry
        assert await broker._claim(keys=[seen], args=["token-b", 60_000]) == 0
        assert await broker.first_seen("update-1", 60) is False
    finally:
        await broker.close()


async def test_redis_unreachable_raises_broker_error() -> None:
    broker = RedisBroker(
        f"redis://127.0.0.1:{dead_port()}/0",
        prefix=unique_prefix(),
        socket_timeout=1,
        subscribe_timeout=0.5,
    )
    try:
        assert await broker.ping() is False
        with pytest.raises(BrokerError):
            await broker.publish("room", {"n": 1})
        with pytest.raises(BrokerError):
            await broker.enqueue("q", "x", 1)
        with pytest.raises(BrokerError) as raised:
            async with broker.lock("conv", timeout=0.5):
                pass
        assert not isinstance(raised.value, LockTimeout)
        started = time.monotonic()
        with pytest.raises(BrokerError):
            await broker.subscribe("room")
        assert time.monotonic() - started < 3
    finally:
        await broker.close()
