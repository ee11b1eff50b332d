"""The Redis broker through restarts and a frozen server, on a private ``redis-server`` that
the tests kill, freeze and start again on the same port."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.broker import Broker, BrokerError, LockTimeout, RedisBroker, Subscription
from scripts import devctl
from tests.bot.broker.support import _numsub, _pubsub_clients, eventually, unique_prefix
from tests.helpers import redis_server_args


class PrivateRedis:
    """A throwaway redis-server this test may kill, freeze and restart on the same port."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            pytest.fail("the Redis restart tests need redis-server (not found)", pytrace=False)
        self.binary = binary
        self.directory = directory
        self.port = devctl.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.directory / "redis.log", "ab")
        self.process = subprocess.Popen(
            [self.binary, *redis_server_args(self.port), "--dir", str(self.directory)],
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
