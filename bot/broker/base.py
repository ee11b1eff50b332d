"""The broker contract: :class:`Broker`, :class:`Subscription`, the errors, and the checks and
constants both implementations share."""

from __future__ import annotations

import json
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Self

# One logger for the whole package (its name from before it was split into modules), so log
# configuration and filters keep working unchanged.
logger = logging.getLogger("bot.broker")

DEFAULT_SUBSCRIBER_QUEUE_SIZE = 1000
# Delivered to every subscription after a lost pub/sub connection came back: events may be lost.
RESYNC_EVENT = '{"type":"resync"}'


class BrokerError(Exception):
    """The broker could not do what was asked: backend unreachable, or used after ``close()``."""


class LockTimeout(BrokerError):
    """``Broker.lock()`` could not acquire the lock within its ``timeout``."""


class SubscriptionClosed(BrokerError):
    """``Subscription.get()`` on a subscription closed by itself or by ``Broker.close()``."""


class Subscription(ABC):
    """The events of one topic, in the order they were published, for one consumer.

    Use as an async iterator (ends when the subscription is closed) or call :meth:`get`.
    Always close it -- ``async with await broker.subscribe(topic) as sub:`` does that -- because
    an open subscription keeps buffering events and keeps the topic subscribed.
    """

    topic: str

    @abstractmethod
    async def get(self, timeout: float | None = None) -> dict[str, Any]:
        """The next event; ``asyncio.TimeoutError`` after ``timeout`` seconds without one.

        Raises :class:`SubscriptionClosed` once the subscription is closed.
        """

    @abstractmethod
    async def close(self) -> None:
        """Stop delivery and discard buffered events. Idempotent."""

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            try:
                event = await self.get()
            except SubscriptionClosed:
                return
            yield event

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Broker(ABC):
    """Pub/sub fan-out, score-ordered queues, dedupe, mutual exclusion and presence.

    All names (topics, queues, keys, members) are free-form strings. Implementations are safe
    to use from many tasks of one event loop at once.
    """

    _closed: bool = False  # set by close(); every operation but ping() and close() then fails

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerError("broker is closed")

    @abstractmethod
    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Deliver ``event`` to every current subscriber of ``topic`` in every process.

        ``event`` must be JSON-serialisable (``TypeError`` otherwise); subscribers receive a
        decoded copy, so later changes to ``event`` by the publisher are not seen.
        """

    @abstractmethod
    async def subscribe(self, topic: str) -> Subscription:
        """A subscription receiving events published after this call returned."""

    @abstractmethod
    async def enqueue(self, queue: str, item: str, score: float) -> None:
        """Add ``item`` to ``queue`` (ascending ``score``); re-enqueueing updates its score."""

    @abstractmethod
    async def remove(self, queue: str, item: str) -> bool:
        """Remove ``item``; True only for the one caller that actually removed it."""

    @abstractmethod
    async def queue_items(self, queue: str) -> list[str]:
        """Items by ascending score (ties: by item, as Redis orders them)."""

    @abstractmethod
    async def position(self, queue: str, item: str) -> int | None:
        """1-based position of ``item`` in ``queue``, None when absent."""

    @abstractmethod
    async def first_seen(self, key: str, ttl_seconds: float) -> bool:
        """True the first time ``key`` is seen within ``ttl_seconds``, False afterwards."""

    @abstractmethod
    def lock(
        self, key: str, timeout: float = 30.0, ttl: float = 60.0
    ) -> AbstractAsyncContextManager[None]:
        """Mutual exclusion on ``key`` across all processes sharing this broker.

        Waits up to ``timeout`` seconds (``0`` means try once), then raises :class:`LockTimeout`.
        ``ttl`` bounds how long a crashed process can keep the lock; the body must finish within
        it, since an expired lock can be taken by someone else.
        """

    @abstractmethod
    async def set_presence(self, member: str, ttl_seconds: float) -> None:
        """Mark ``member`` present for ``ttl_seconds`` (a heartbeat); ``ttl <= 0`` removes it."""

    @abstractmethod
    async def present(self) -> list[str]:
        """Members whose presence has not expired, sorted."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when the backend is reachable; never raises."""

    @abstractmethod
    async def close(self) -> None:
        """Close every subscription and release connections. Idempotent."""


def encode_event(event: dict[str, Any]) -> str:
    """An event as published: compact JSON (``TypeError`` when it is not serialisable)."""
    return json.dumps(event, separators=(",", ":"))


def check_score(score: float) -> None:
    if math.isnan(score):
        raise ValueError("queue score must not be NaN")


def check_ttl(ttl_seconds: float) -> None:
    if not ttl_seconds > 0:
        raise ValueError(f"ttl must be positive, got {ttl_seconds!r}")
