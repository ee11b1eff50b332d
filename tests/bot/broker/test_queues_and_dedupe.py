"""Score-ordered queues and first-seen dedupe, on both brokers."""

from __future__ import annotations

import asyncio

import pytest

from bot.broker import Broker


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
