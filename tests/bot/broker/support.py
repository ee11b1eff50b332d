"""Helpers of the broker tests: per-test key prefixes, waiting for events, and looking at
Redis from the outside."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.broker import Broker, Subscription

REDIS_URL = os.environ.get("CSBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_PREFIX = f"csbot-test:{uuid.uuid4().hex[:12]}:"
_test_ids = itertools.count()

BrokerFactory = Callable[..., Broker]


def unique_prefix() -> str:
    return f"{RUN_PREFIX}{next(_test_ids)}:"


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


async def _is(awaitable: Any, expected: Any) -> bool:
    return bool(await awaitable == expected)
