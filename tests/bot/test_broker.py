"""Contract tests for bot.broker, run against InProcessBroker and against a real Redis.

Redis comes from ``CSBOT_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). Every test run
uses its own key prefix (and every test its own sub-prefix), so runs and tests never see each
other's keys or channels; the run's keys are deleted at the end. An unreachable Redis fails the
Redis tests -- it is never a reason to skip them. The restart tests start their own private
``redis-server`` on a free port, because they have to kill it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from bot.broker import (
    Broker,
    BrokerError,
    InProcessBroker,
    LockTimeout,
    RedisBroker,
    Subscription,
    SubscriptionClosed,
    _PubSubHub,
    _Topic,
    create_broker,
)

REDIS_URL = os.environ.get("CSBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_PREFIX = f"csbot-test:{uuid.uuid4().hex[:12]}:"
_test_ids = itertools.count()

BrokerFactory = Callable[..., Broker]


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The shared test Redis; fails (never skips) when it is not reachable."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.fail(
            f"Redis is required for the RedisBroker tests but {REDIS_URL} is not reachable: "
            f"{type(exc).__name__}: {exc}\n"
            "Start Redis (e.g. `redis-server --port 6379`) or set CSBOT_TEST_REDIS_URL.",
            pytrace=False,
        )
    try:
        yield REDIS_URL
    finally:
        for key in client.scan_iter(match=f"{RUN_PREFIX}*", count=1000):
            client.delete(key)
        client.close()


def unique_prefix() -> str:
    return f"{RUN_PREFIX}{next(_test_ids)}:"


@pytest.fixture(params=["memory", "redis"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Every contract test runs once per implementation."""
    return str(request.param)


@pytest.fixture
async def make_broker(
    broker_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[BrokerFactory]:
    """Creates brokers of the kind under test; Redis ones share this test's own prefix."""
    created: list[Broker] = []
    prefix = unique_prefix()
    url: str | None = request.getfixturevalue("redis_url") if broker_kind == "redis" else None

    def make(**kwargs: Any) -> Broker:
        broker: Broker
        if url is None:
            broker = InProcessBroker(**kwargs)
        else:
            broker = RedisBroker(url, prefix=prefix, **kwargs)
        created.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in created:
            await broker.close()


@pytest.fixture
def broker(make_broker: BrokerFactory) -> Broker:
    return make_broker()


@pytest.fixture
def replicas(broker_kind: str, make_broker: BrokerFactory) -> tuple[Broker, Broker]:
    """Two gateway replicas: two RedisBrokers on one Redis, or the one in-process broker."""
    if broker_kind == "memory":
        only = make_broker()
        return only, only
    return make_broker(), make_broker()


async def next_events(sub: Subscription, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    return [await sub.get(timeout=timeout) for _ in range(count)]


async def assert_no_event(sub: Subscription, wait: float = 0.2) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await sub.get(timeout=wait)


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> None:
    """Poll an (async) predicate until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A throwaway redis-server this test may kill, freeze and restart on the same port."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            pytest.fail("the Redis restart tests need redis-server (not found)", pytrace=False)
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.directory / "redis.log", "ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        log_text = (self.directory / "redis.log").read_text(errors="replace")
                        pytest.fail(f"private redis-server did not start:\n{log_text}")
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.thaw()  # a SIGSTOPped process ignores SIGKILL until continued on some kernels
        server.kill()


# --------------------------------------------------------------------------------------------
# Publish / subscribe
# --------------------------------------------------------------------------------------------


async def test_publish_fans_out_to_every_subscriber(broker: Broker) -> None:
    first = await broker.subscribe("room")
    second = await broker.subscribe("room")
    for n in range(3):
        await broker.publish("room", {"n": n})
    for sub in (first, second):
        assert [e["n"] for e in await next_events(sub, 3)] == [0, 1, 2]
        await assert_no_event(sub)


async def test_no_events_from_before_subscribe(broker: Broker) -> None:
    await broker.publish("room", {"n": "early"})
    sub = await broker.subscribe("room")
    await broker.publish("room", {"n": "late"})
    assert await sub.get(timeout=5) == {"n": "late"}
    await assert_no_event(sub)


async def test_topics_are_isolated(broker: Broker) -> None:
    a = await broker.subscribe("a")
    b = await broker.subscribe("b")
    await broker.publish("a", {"to": "a"})
    assert await a.get(timeout=5) == {"to": "a"}
    await assert_no_event(b)


async def test_close_stops_delivery(broker: Broker) -> None:
    closing = await broker.subscribe("room")
    staying = await broker.subscribe("room")
    await broker.publish("room", {"n": 1})
    await staying.get(timeout=5)
    await closing.close()
    await closing.close()  # idempotent
    await broker.publish("room", {"n": 2})
    assert await staying.get(timeout=5) == {"n": 2}
    with pytest.raises(SubscriptionClosed):
        await closing.get(timeout=0.2)
    # The topic can be subscribed again after its last subscriber left.
    await staying.close()
    again = await broker.subscribe("room")
    await broker.publish("room", {"n": 3})
    assert await again.get(timeout=5) == {"n": 3}


async def test_subscription_as_context_manager_and_iterator(broker: Broker) -> None:
    received: list[int] = []
    async with await broker.subscribe("room") as sub:

        async def consume() -> None:
            async for event in sub:
                received.append(event["n"])

        consumer = asyncio.create_task(consume())
        for n in range(3):
            await broker.publish("room", {"n": n})
        await eventually(lambda: len(received) == 3)
    # Leaving the block closed the subscription, which ends the iteration.
    await asyncio.wait_for(consumer, 5)
    assert received == [0, 1, 2]


async def test_get_times_out(broker: Broker) -> None:
    sub = await broker.subscribe("quiet")
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await sub.get(timeout=0.1)
    assert time.monotonic() - started < 2


async def test_subscribers_get_independent_copies(broker: Broker) -> None:
    first = await broker.subscribe("room")
    second = await broker.subscribe("room")
    event: dict[str, Any] = {"text": "hi", "tags": ["a"]}
    await broker.publish("room", event)
    event["tags"].append("changed after publish")
    got_first = await first.get(timeout=5)
    got_first["tags"].append("changed by a subscriber")
    assert await second.get(timeout=5) == {"text": "hi", "tags": ["a"]}


async def test_publish_rejects_non_json_events(broker: Broker) -> None:
    with pytest.raises(TypeError):
        await broker.publish("room", {"when": object()})


async def test_slow_subscriber_drops_oldest_without_blocking_others(
    make_broker: BrokerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker(subscriber_queue_size=5)
    slow = await broker.subscribe("room")
    fast = await broker.subscribe("room")
    with caplog.at_level(logging.WARNING, logger="bot.broker"):
        for n in range(20):
            await broker.publish("room", {"n": n})
            # The fast subscriber gets every event at once although `slow` never reads.
            assert (await fast.get(timeout=5))["n"] == n
    assert [e["n"] for e in await next_events(slow, 5)] == [15, 16, 17, 18, 19]
    await assert_no_event(slow)
    assert any("slow subscriber" in r.getMessage() for r in caplog.records)


async def test_replicas_see_each_others_events(replicas: tuple[Broker, Broker]) -> None:
    a, b = replicas
    on_a = await a.subscribe("room")
    on_b = await b.subscribe("room")
    await a.publish("room", {"from": "a"})
    await b.publish("room", {"from": "b"})
    for sub in (on_a, on_b):
        assert [e["from"] for e in await next_events(sub, 2)] == ["a", "b"]


async def test_replicas_share_queue_dedupe_and_locks(replicas: tuple[Broker, Broker]) -> None:
    a, b = replicas
    await a.enqueue("handoff", "conv-1", 1.0)
    await b.enqueue("handoff", "conv-2", 2.0)
    assert await b.queue_items("handoff") == ["conv-1", "conv-2"]
    assert await a.position("handoff", "conv-2") == 2
    assert await b.remove("handoff", "conv-1") is True
    assert await a.remove("handoff", "conv-1") is False

    assert await a.first_seen("telegram:42", 30) is True
    assert await b.first_seen("telegram:42", 30) is False

    async with a.lock("conv-2", timeout=1):
        with pytest.raises(LockTimeout):
            async with b.lock("conv-2", timeout=0.2):
                pass
    async with b.lock("conv-2", timeout=1):
        pass


# --------------------------------------------------------------------------------------------
# Queues
# --------------------------------------------------------------------------------------------


async def test_queue_orders_by_score_and_reenqueue_updates(broker: Broker) -> None:
    assert await broker.queue_items("q") == []
    await broker.enqueue("q", "c", 3)
    await broker.enqueue("q", "a", 1)
    await broker.enqueue("q", "b", 2.5)
    assert await broker.queue_items("q") == ["a", "b", "c"]
    await broker.enqueue("q", "a", 10)  # re-enqueue moves it, never duplicates it
    assert await broker.queue_items("q") == ["b", "c", "a"]
    await broker.enqueue("q", "z", 0)
    await broker.enqueue("q", "y", 0)  # equal scores: ordered by item, as Redis does
    assert await broker.queue_items("q") == ["y", "z", "b", "c", "a"]
    assert await broker.queue_items("other") == []


async def test_position(broker: Broker) -> None:
    for n, item in enumerate(["first", "second", "third"]):
        await broker.enqueue("q", item, n)
    assert await broker.position("q", "first") == 1
    assert await broker.position("q", "third") == 3
    assert await broker.position("q", "missing") is None
    assert await broker.position("nowhere", "first") is None
    assert await broker.remove("q", "first") is True
    assert await broker.position("q", "third") == 2


async def test_remove(broker: Broker) -> None:
    await broker.enqueue("q", "x", 1)
    assert await broker.remove("q", "x") is True
    assert await broker.remove("q", "x") is False
    assert await broker.remove("nowhere", "x") is False
    assert await broker.queue_items("q") == []
    await broker.enqueue("q", "x", 1)  # a removed item can come back
    assert await broker.remove("q", "x") is True


async def test_remove_exactly_once_under_concurrency(replicas: tuple[Broker, Broker]) -> None:
    a, b = replicas
    for round_ in range(5):
        item = f"conv-{round_}"
        await a.enqueue("q", item, 1)
        removers = [replica.remove("q", item) for replica in (a, b) * 10]
        results = await asyncio.gather(*removers)
        assert len(results) == 20
        assert results.count(True) == 1
    assert await a.queue_items("q") == []


async def test_nan_score_is_rejected(broker: Broker) -> None:
    with pytest.raises(ValueError):
        await broker.enqueue("q", "x", float("nan"))


# --------------------------------------------------------------------------------------------
# Dedupe
# --------------------------------------------------------------------------------------------


async def test_first_seen_with_ttl_expiry(broker: Broker) -> None:
    assert await broker.first_seen("msg-1", 0.3) is True
    assert await broker.first_seen("msg-1", 0.3) is False
    assert await broker.first_seen("msg-2", 0.3) is True
    await asyncio.sleep(0.45)
    assert await broker.first_seen("msg-1", 0.3) is True
    assert await broker.first_seen("msg-1", 0.3) is False


async def test_first_seen_once_under_concurrency(replicas: tuple[Broker, Broker]) -> None:
    a, b = replicas
    results = await asyncio.gather(*(r.first_seen("update-7", 30) for r in (a, b) * 10))
    assert results.count(True) == 1


async def test_first_seen_rejects_non_positive_ttl(broker: Broker) -> None:
    with pytest.raises(ValueError):
        await broker.first_seen("k", 0)


# --------------------------------------------------------------------------------------------
# Locks
# --------------------------------------------------------------------------------------------


async def test_lock_mutual_exclusion(replicas: tuple[Broker, Broker]) -> None:
    a, b = replicas
    counter = 0
    inside = 0
    most_inside = 0

    async def increment(replica: Broker) -> None:
        nonlocal counter, inside, most_inside
        async with replica.lock("counter", timeout=20):
            inside += 1
            most_inside = max(most_inside, inside)
            value = counter
            await asyncio.sleep(0.002)  # yield mid read-modify-write: a race without the lock
            counter = value + 1
            inside -= 1

    await asyncio.gather(*(increment(replica) for replica in (a, b) * 10))
    assert counter == 20
    assert most_inside == 1


async def test_lock_timeout_when_held(broker: Broker) -> None:
    async with broker.lock("conv", timeout=1):
        started = time.monotonic()
        with pytest.raises(LockTimeout) as raised:
            async with broker.lock("conv", timeout=0.2):
                pytest.fail("acquired a held lock")
        waited = time.monotonic() - started
        assert 0.15 <= waited < 2
        assert isinstance(raised.value, BrokerError)
        with pytest.raises(LockTimeout):
            async with broker.lock("conv", timeout=0):
                pass
        async with broker.lock("other-conv", timeout=0.5):  # other keys are independent
            pass


async def test_lock_released_on_exception(broker: Broker) -> None:
    with pytest.raises(RuntimeError):
        async with broker.lock("conv"):
            raise RuntimeError("boom")
    async with broker.lock("conv", timeout=0.5):
        pass


async def test_lock_waiter_gets_the_lock_when_released(broker: Broker) -> None:
    order: list[str] = []
    holding = asyncio.Event()

    async def holder() -> None:
        async with broker.lock("conv"):
            holding.set()
            await asyncio.sleep(0.2)
            order.append("holder done")

    task = asyncio.create_task(holder())
    await holding.wait()
    async with broker.lock("conv", timeout=5):
        order.append("waiter in")
    await task
    assert order == ["holder done", "waiter in"]


async def test_lock_released_when_waiting_task_is_cancelled(broker: Broker) -> None:
    async with broker.lock("conv"):

        async def wait_for_lock() -> None:
            async with broker.lock("conv", timeout=10):
                pass

        waiter = asyncio.create_task(wait_for_lock())
        await asyncio.sleep(0.1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    async with broker.lock("conv", timeout=0.5):
        pass


async def test_inprocess_lock_forgets_unused_keys() -> None:
    broker = InProcessBroker()
    async with broker.lock("a"):
        with pytest.raises(LockTimeout):
            async with broker.lock("a", timeout=0.05):
                pass
    with pytest.raises(RuntimeError):
        async with broker.lock("b"):
            raise RuntimeError
    await asyncio.gather(*(_hold(broker, "c") for _ in range(5)))
    assert len(broker._locks) == 0
    await broker.close()


async def _hold(broker: Broker, key: str) -> None:
    async with broker.lock(key, timeout=5):
        await asyncio.sleep(0.001)


async def test_redis_lock_expires_after_ttl(redis_url: str) -> None:
    """A crashed holder (never releases) blocks others only for the lock's ttl."""
    prefix = unique_prefix()
    crashed = RedisBroker(redis_url, prefix=prefix)
    other = RedisBroker(redis_url, prefix=prefix)
    manager = crashed.lock("conv", ttl=0.3)
    try:
        await manager.__aenter__()
        await crashed.close()  # the holder "dies" without releasing
        with pytest.raises(LockTimeout):
            async with other.lock("conv", timeout=0.05):
                pass
        async with other.lock("conv", timeout=3):
            pass
    finally:
        await manager.__aexit__(None, None, None)  # a closed broker releases nothing
        await crashed.close()
        await other.close()


async def test_redis_expired_lock_release_leaves_the_new_holders_lock(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Compare-and-delete: a holder that outlived its ttl must not free someone else's lock."""
    prefix = unique_prefix()
    slow = RedisBroker(redis_url, prefix=prefix)
    other = RedisBroker(redis_url, prefix=prefix)
    try:
        other_holds = asyncio.Event()
        slow_released = asyncio.Event()

        async def slow_holder() -> None:
            async with slow.lock("conv", ttl=0.2):
                await other_holds.wait()  # the ttl ran out meanwhile and `other` took the lock
            slow_released.set()

        task = asyncio.create_task(slow_holder())
        await asyncio.sleep(0.05)
        with caplog.at_level(logging.WARNING, logger="bot.broker"):
            async with other.lock("conv", timeout=3):
                other_holds.set()
                await slow_released.wait()
                with pytest.raises(LockTimeout):  # still held by `other`
                    async with slow.lock("conv", timeout=0.1):
                        pass
        await task
        assert any("expired before release" in r.getMessage() for r in caplog.records)
    finally:
        await slow.close()
        await other.close()


# --------------------------------------------------------------------------------------------
# Presence
# --------------------------------------------------------------------------------------------


async def test_presence_expiry(replicas: tuple[Broker, Broker]) -> None:
    a, b = replicas
    assert await a.present() == []
    await a.set_presence("bob", 0.3)
    await b.set_presence("alice", 30)
    assert await b.present() == ["alice", "bob"]
    await asyncio.sleep(0.45)
    assert await a.present() == ["alice"]
    # A heartbeat renews presence before it runs out.
    await a.set_presence("bob", 0.3)
    await asyncio.sleep(0.2)
    await b.set_presence("bob", 0.3)
    await asyncio.sleep(0.2)
    assert await a.present() == ["alice", "bob"]
    # ttl <= 0 takes a member offline at once.
    await b.set_presence("alice", 0)
    assert await a.present() == ["bob"]


# --------------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------------


async def test_ping_and_close(make_broker: BrokerFactory) -> None:
    broker = make_broker()
    assert await broker.ping() is True
    sub = await broker.subscribe("room")
    await broker.close()
    await broker.close()  # idempotent
    assert await broker.ping() is False
    with pytest.raises(SubscriptionClosed):
        await sub.get(timeout=1)
    with pytest.raises(BrokerError):
        await broker.publish("room", {})
    with pytest.raises(BrokerError):
        await broker.subscribe("room")


async def test_create_broker(redis_url: str) -> None:
    assert isinstance(create_broker(None), InProcessBroker)
    assert isinstance(create_broker(""), InProcessBroker)
    broker = create_broker(redis_url, prefix=unique_prefix())
    try:
        assert isinstance(broker, RedisBroker)
        assert await broker.ping() is True
    finally:
        await broker.close()


# --------------------------------------------------------------------------------------------
# Redis specifics: one shared pub/sub connection, failures, restarts
# --------------------------------------------------------------------------------------------


async def _pubsub_clients(url: str, prefix: str) -> list[dict[str, Any]]:
    admin = aioredis.Redis.from_url(url)
    try:
        clients: list[dict[str, Any]] = await admin.client_list()
    finally:
        await admin.aclose()
    name = f"{prefix.rstrip(':')}:pubsub"
    return [c for c in clients if c.get("name") == name]


async def _numsub(url: str, channel: str) -> int:
    admin = aioredis.Redis.from_url(url)
    try:
        counts = await admin.pubsub_numsub(channel)
    finally:
        await admin.aclose()
    return int(counts[0][1])


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


async def _is(awaitable: Any, expected: Any) -> bool:
    return bool(await awaitable == expected)


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
        f"redis://127.0.0.1:{free_port()}/0",
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


async def _await_delivery(publisher: Broker, sub: Subscription, timeout: float = 10.0) -> None:
    """Publish probes until ``sub`` gets one.

    Events published while the pub/sub connection is still being re-established are lost by
    design (Redis pub/sub has no replay), hence probing instead of publishing once.
    """
    deadline = time.monotonic() + timeout
    for n in itertools.count():
        await publisher.publish(sub.topic, {"probe": n})
        try:
            await sub.get(timeout=0.2)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                pytest.fail(f"subscription to {sub.topic!r} did not recover within {timeout}s")


async def _assert_receives(publisher: Broker, sub: Subscription, event: dict[str, Any]) -> None:
    """``event`` published now arrives (skipping late probes and the resync notice that
    follows a reconnect)."""
    await publisher.publish(sub.topic, event)
    while (got := await sub.get(timeout=5)) != event:
        assert "probe" in got or got == {"type": "resync"}


async def test_redis_restart(private_redis: PrivateRedis) -> None:
    prefix = unique_prefix()
    broker = RedisBroker(private_redis.url, prefix=prefix, reconnect_max=0.3, socket_timeout=1)
    other = RedisBroker(private_redis.url, prefix=prefix, reconnect_max=0.3, socket_timeout=1)
    # `other` plays a second replica connected through the restart.
    try:
        sub = await broker.subscribe("room")
        gone = await broker.subscribe("gone")
        await broker.enqueue("q", "before", 1)
        await other.publish("room", {"n": "before"})
        assert await sub.get(timeout=5) == {"n": "before"}

        private_redis.kill()
        # While Redis is down commands fail fast with BrokerError (after one retry), no hang.
        with pytest.raises(BrokerError):
            await broker.enqueue("q", "during", 2)
        assert await broker.ping() is False
        await gone.close()  # closed while down: must not be re-subscribed
        await eventually(lambda: not broker.pubsub_connected)

        private_redis.start()  # same port, empty dataset (no persistence)
        # Commands work at once: the dead pooled connection is replaced transparently.
        await broker.enqueue("q", "after", 2)
        assert await other.queue_items("q") == ["after"]
        assert await other.position("q", "after") == 1
        assert await broker.remove("q", "after") is True

        # Existing subscriptions come back by themselves, on both replicas.
        await _await_delivery(other, sub)
        await _assert_receives(other, sub, {"n": "after restart"})
        assert broker.pubsub_reconnects >= 1
        assert broker.pubsub_connected
        assert await _numsub(private_redis.url, f"{prefix}events:gone") == 0

        # New subscriptions, Lua-based operations (script cache was lost) and presence work.
        fresh = await other.subscribe("fresh")
        await broker.publish("fresh", {"n": 1})
        assert await fresh.get(timeout=5) == {"n": 1}
        assert await broker.first_seen("msg", 10) is True
        assert await other.first_seen("msg", 10) is False
        async with broker.lock("conv", timeout=1):
            with pytest.raises(LockTimeout):
                async with other.lock("conv", timeout=0.1):
                    pass
        await other.set_presence("agent", 10)
        assert await broker.present() == ["agent"]
    finally:
        await broker.close()
        await other.close()


async def test_redis_restart_twice_with_many_topics(private_redis: PrivateRedis) -> None:
    prefix = unique_prefix()
    broker = RedisBroker(private_redis.url, prefix=prefix, reconnect_max=0.3, socket_timeout=1)
    try:
        subs = [await broker.subscribe(f"t{n}") for n in range(30)]
        for _ in range(2):
            private_redis.kill()
            await eventually(lambda: not broker.pubsub_connected)
            private_redis.start()
            await _await_delivery(broker, subs[0])
            for sub in subs:
                await _assert_receives(broker, sub, {"topic": sub.topic})
        clients = await _pubsub_clients(private_redis.url, prefix)
        assert len(clients) == 1
        assert int(clients[0]["sub"]) == 30
    finally:
        await broker.close()


async def test_redis_frozen_server_is_detected_by_ping(private_redis: PrivateRedis) -> None:
    """A connection that stays open but goes silent (no FIN, e.g. a partition) is replaced."""
    prefix = unique_prefix()
    broker = RedisBroker(
        private_redis.url,
        prefix=prefix,
        ping_interval=0.3,
        reconnect_max=0.3,
        socket_timeout=0.5,
    )
    try:
        sub = await broker.subscribe("room")
        private_redis.freeze()
        await asyncio.sleep(1.5)  # > 2 ping intervals: the reader gives up on the connection
        private_redis.thaw()
        await _await_delivery(broker, sub)
        await _assert_receives(broker, sub, {"n": "after thaw"})
        assert broker.pubsub_reconnects >= 1
    finally:
        await broker.close()


async def test_subscribers_are_told_to_resync_after_a_reconnect(
    private_redis: PrivateRedis,
) -> None:
    broker = RedisBroker(private_redis.url, prefix=f"csbot-test-{uuid.uuid4().hex}:")
    try:
        sub = await broker.subscribe("topic")
        private_redis.kill()
        private_redis.start()
        got = await sub.get(timeout=15)
        assert got == {"type": "resync"}  # events may have been lost: re-read the record
    finally:
        await broker.close()
