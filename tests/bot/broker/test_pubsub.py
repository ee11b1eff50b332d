"""Publish / subscribe, on both brokers; replicas sharing one view."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from bot.broker import Broker, LockTimeout, SubscriptionClosed
from tests.bot.broker.support import BrokerFactory, assert_no_event, eventually, next_events


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
