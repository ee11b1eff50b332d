"""Presence heartbeats, ping/close, and create_broker."""

from __future__ import annotations

import asyncio

import pytest

from bot.broker import (
    Broker,
    BrokerError,
    InProcessBroker,
    RedisBroker,
    SubscriptionClosed,
    create_broker,
)
from tests.bot.broker.support import BrokerFactory, unique_prefix


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
