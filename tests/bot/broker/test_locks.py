"""Locks on both brokers, and the Redis lock's ttl and compare-and-delete."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bot.broker import Broker, BrokerError, InProcessBroker, LockTimeout, RedisBroker
from tests.bot.broker.support import unique_prefix


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
