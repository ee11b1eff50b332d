"""The in-process broker: correct for exactly one gateway process (development, tests, small
single-node installs)."""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from bot.broker.base import (
    DEFAULT_SUBSCRIBER_QUEUE_SIZE,
    Broker,
    Subscription,
    check_score,
    check_ttl,
    encode_event,
)
from bot.broker.shared import _BufferedSubscription, _KeyedLocks


class InProcessBroker(Broker):
    """Broker for a single gateway process: plain dicts and ``asyncio.Lock`` objects.

    Nothing is shared with other processes. ``lock(ttl=...)`` is accepted but not enforced: a
    holder in this process cannot vanish without running its ``finally`` blocks.
    """

    def __init__(self, *, subscriber_queue_size: int = DEFAULT_SUBSCRIBER_QUEUE_SIZE) -> None:
        self._queue_size = subscriber_queue_size
        self._subscribers: dict[str, set[_BufferedSubscription]] = {}
        self._queues: dict[str, dict[str, float]] = {}
        self._seen: dict[str, float] = {}  # key -> monotonic expiry
        self._next_seen_sweep = 0.0
        self._presence: dict[str, float] = {}  # member -> monotonic expiry
        self._locks = _KeyedLocks()
        self._closed = False

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        self._check_open()
        # Encode even with no subscribers, so a non-serialisable event fails here exactly as it
        # would with Redis instead of only in production.
        raw = encode_event(event)
        for subscription in self._subscribers.get(topic, ()):
            subscription.deliver(raw)

    async def subscribe(self, topic: str) -> Subscription:
        self._check_open()
        subscription = _BufferedSubscription(topic, self._queue_size, self._unsubscribe)
        self._subscribers.setdefault(topic, set()).add(subscription)
        return subscription

    async def _unsubscribe(self, subscription: _BufferedSubscription) -> None:
        subscribers = self._subscribers.get(subscription.topic)
        if subscribers is None:
            return
        subscribers.discard(subscription)
        if not subscribers:
            del self._subscribers[subscription.topic]

    async def enqueue(self, queue: str, item: str, score: float) -> None:
        self._check_open()
        check_score(score)
        self._queues.setdefault(queue, {})[item] = float(score)

    async def remove(self, queue: str, item: str) -> bool:
        self._check_open()
        items = self._queues.get(queue)
        if items is None or item not in items:
            return False
        del items[item]
        if not items:
            del self._queues[queue]
        return True

    def _ordered(self, queue: str) -> list[str]:
        items = self._queues.get(queue, {})
        # Same order as a Redis sorted set: by score, ties by member (code point order equals
        # the byte order of UTF-8, which is what Redis compares).
        return [item for item, _ in sorted(items.items(), key=lambda kv: (kv[1], kv[0]))]

    async def queue_items(self, queue: str) -> list[str]:
        self._check_open()
        return self._ordered(queue)

    async def position(self, queue: str, item: str) -> int | None:
        self._check_open()
        if item not in self._queues.get(queue, {}):
            return None
        return self._ordered(queue).index(item) + 1

    async def first_seen(self, key: str, ttl_seconds: float) -> bool:
        self._check_open()
        check_ttl(ttl_seconds)
        now = time.monotonic()
        if now >= self._next_seen_sweep:
            # Sweep at most once a second so the dedupe table stays bounded by traffic*ttl.
            self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
            self._next_seen_sweep = now + 1.0
        expiry = self._seen.get(key)
        if expiry is not None and expiry > now:
            return False
        self._seen[key] = now + ttl_seconds
        return True

    def lock(
        self, key: str, timeout: float = 30.0, ttl: float = 60.0
    ) -> AbstractAsyncContextManager[None]:
        self._check_open()
        check_ttl(ttl)  # not enforced here, but validated like RedisBroker does
        return self._locks.hold(key, timeout)

    async def set_presence(self, member: str, ttl_seconds: float) -> None:
        self._check_open()
        if ttl_seconds <= 0:
            self._presence.pop(member, None)
        else:
            self._presence[member] = time.monotonic() + ttl_seconds

    async def present(self) -> list[str]:
        self._check_open()
        now = time.monotonic()
        self._presence = {m: exp for m, exp in self._presence.items() if exp > now}
        return sorted(self._presence)

    async def ping(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        self._closed = True
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                subscription.mark_closed()
        self._subscribers.clear()
