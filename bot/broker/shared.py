"""Building blocks both brokers use: a subscription fed by its broker that buffers encoded
events for one consumer, and per-key ``asyncio`` locks that are forgotten when unused."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from bot.broker.base import LockTimeout, Subscription, SubscriptionClosed, logger

# A slow subscriber may drop events continuously; one warning per interval is enough to notice.
_DROP_WARNING_INTERVAL = 5.0


class _BufferedSubscription(Subscription):
    """A subscription fed synchronously by its broker, buffering encoded events.

    Events are kept JSON-encoded and decoded in :meth:`get`: every consumer gets its own copy
    (no shared mutable dicts) and events dropped for a slow consumer are never decoded.
    """

    def __init__(
        self,
        topic: str,
        maxsize: int,
        on_close: Callable[[_BufferedSubscription], Awaitable[None]],
    ) -> None:
        self.topic = topic
        self._maxsize = maxsize
        self._on_close = on_close
        self._buffer: deque[str | bytes] = deque()
        self._waiters: set[asyncio.Future[None]] = set()
        self._closed = False
        self._dropped = 0
        self._last_drop_warning = -math.inf

    @property
    def closed(self) -> bool:
        return self._closed

    def deliver(self, raw: str | bytes) -> None:
        """Buffer one encoded event; never blocks, drops the oldest event when full."""
        if self._closed:
            return
        if len(self._buffer) >= self._maxsize:
            self._buffer.popleft()
            self._dropped += 1
            now = time.monotonic()
            if now - self._last_drop_warning >= _DROP_WARNING_INTERVAL:
                self._last_drop_warning = now
                logger.warning(
                    "slow subscriber on topic %r: buffer full (%d events), dropped the oldest; "
                    "%d dropped so far",
                    self.topic,
                    self._maxsize,
                    self._dropped,
                )
        self._buffer.append(raw)
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def mark_closed(self) -> None:
        """Close without telling the broker (used when the broker itself closes)."""
        self._closed = True
        self._buffer.clear()
        self._wake()

    async def get(self, timeout: float | None = None) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                while not self._buffer:
                    if self._closed:
                        raise SubscriptionClosed(f"subscription to {self.topic!r} is closed")
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.add(waiter)
                    try:
                        await waiter
                    finally:
                        self._waiters.discard(waiter)
                raw = self._buffer.popleft()
                try:
                    event = json.loads(raw)
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    return event
                # Only a foreign publisher on our channel can cause this; one bad payload must
                # not kill the consumer (e.g. a customer's websocket), so skip it.
                logger.warning("ignored non-object event on topic %r: %.200r", self.topic, raw)

    async def close(self) -> None:
        if self._closed:
            return
        self.mark_closed()
        await self._on_close(self)


class _LockEntry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0  # holders + waiters; the entry is dropped when this reaches 0


class _KeyedLocks:
    """Per-key ``asyncio.Lock`` objects that are forgotten once nobody holds or awaits them.

    Keys are typically conversation ids, so keeping every lock ever used would leak memory.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _LockEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, key: str, timeout: float) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _LockEntry()
        entry.users += 1
        try:
            try:
                # asyncio.Lock.acquire() is cancellation-safe, so a timeout that races with the
                # lock being handed over cannot leave the lock held by nobody.
                async with asyncio.timeout(max(timeout, 0.0)):
                    await entry.lock.acquire()
            except TimeoutError:
                raise LockTimeout(f"lock {key!r} not acquired within {timeout}s") from None
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]
