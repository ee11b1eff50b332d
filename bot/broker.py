"""Cross-process coordination for the gateway: event fan-out, work queues, dedupe, locks, presence.

One interface, two implementations:

* :class:`InProcessBroker` keeps everything in memory. Correct for exactly one gateway process
  (development, tests, small single-node installs).
* :class:`RedisBroker` keeps everything in Redis so that N gateway replicas behind a load balancer
  share one view: an event published by replica A reaches websocket subscribers on replica B,
  a queued conversation can be claimed exactly once, and so on.

Delivery semantics (both implementations):

* Events are JSON objects. A subscriber sees events published *after* ``subscribe()`` returned,
  in publish order per publisher. There is no replay: events published while a Redis pub/sub
  connection is being re-established are lost, so consumers that cannot miss anything must
  re-read authoritative state (the database) after a reconnect or a gap. Rarely an event can
  arrive twice (a publish retried after its reply was lost), so consumers should be idempotent,
  e.g. by message id.
* Each subscriber has a bounded buffer. A subscriber that does not keep up loses its *oldest*
  buffered events (with a logged warning) instead of slowing down everyone else.
* Every backend failure surfaces as :class:`BrokerError`; the Redis implementation first retries
  a failed command once, so a single dropped connection (e.g. a Redis restart) is invisible.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Self

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

__all__ = [
    "Broker",
    "BrokerError",
    "InProcessBroker",
    "LockTimeout",
    "RedisBroker",
    "Subscription",
    "SubscriptionClosed",
    "create_broker",
]

logger = logging.getLogger(__name__)

DEFAULT_SUBSCRIBER_QUEUE_SIZE = 1000
# Delivered to every subscription after a lost pub/sub connection came back: events may be lost.
RESYNC_EVENT = '{"type":"resync"}'
# A slow subscriber may drop events continuously; one warning per interval is enough to notice.
_DROP_WARNING_INTERVAL = 5.0


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


def create_broker(redis_url: str | None, prefix: str = "csbot:") -> Broker:
    """A :class:`RedisBroker` for ``redis_url``, or an :class:`InProcessBroker` when it is unset.

    An empty string counts as unset, so an empty ``REDIS_URL`` environment variable works.
    """
    if not redis_url:
        return InProcessBroker()
    return RedisBroker(redis_url, prefix=prefix)


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


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


def _check_score(score: float) -> None:
    if math.isnan(score):
        raise ValueError("queue score must not be NaN")


def _check_ttl(ttl_seconds: float) -> None:
    if not ttl_seconds > 0:
        raise ValueError(f"ttl must be positive, got {ttl_seconds!r}")


# --------------------------------------------------------------------------------------------
# In-process implementation
# --------------------------------------------------------------------------------------------


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

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerError("broker is closed")

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        self._check_open()
        # Encode even with no subscribers, so a non-serialisable event fails here exactly as it
        # would with Redis instead of only in production.
        raw = json.dumps(event, separators=(",", ":"))
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
        _check_score(score)
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
        _check_ttl(ttl_seconds)
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
        _check_ttl(ttl)  # not enforced here, but validated like RedisBroker does
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


# --------------------------------------------------------------------------------------------
# Redis implementation
# --------------------------------------------------------------------------------------------

# SET NX PX, made idempotent: if the reply to our own SET was lost and the command is retried,
# the key holds our token and we must still report success (otherwise a retried first_seen()
# would drop a message as a duplicate, and a retried lock acquire would wait for its own lock).
_CLAIM_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return 1
end
return 0
"""

# Compare-and-delete: never release a lock that expired and was taken by someone else.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# ZREM decides the single winner. The receipt (KEYS[2] = token) lets a retried call of the
# winner -- whose first reply was lost with the connection -- still see True, so a claimed
# item is never removed with nobody owning it.
_REMOVE_LUA = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
if redis.call('GET', KEYS[2]) == ARGV[2] then
  return 1
end
return 0
"""

# Presence is a sorted set scored by expiry time. The clock is Redis' own (TIME), so replicas
# with skewed clocks still agree on who is present. Needs Redis >= 5 (effects replication).
_SET_PRESENCE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return 1
"""

_PRESENT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""

_RECEIPT_TTL_MS = 60_000  # far longer than one retry takes
_LOCK_POLL_MIN = 0.005
_LOCK_POLL_MAX = 0.05


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


@contextlib.contextmanager
def _redis_errors(what: str) -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        raise BrokerError(f"redis {what} failed: {exc}") from exc


class _Topic:
    """Local subscribers of one topic and whether Redis confirmed the SUBSCRIBE."""

    __slots__ = ("confirmed", "subscribers")

    def __init__(self) -> None:
        self.subscribers: set[_BufferedSubscription] = set()
        self.confirmed = asyncio.Event()


class _PubSubHub:
    """One Redis pub/sub connection per process, multiplexing every local subscription.

    A reader task owns the connection: it dispatches messages into per-subscriber buffers,
    and when the connection fails it reconnects with exponential backoff and re-subscribes
    every topic that still has local subscribers. SUBSCRIBE/UNSUBSCRIBE are sent by the
    subscribing/closing task under ``_lock``; the reader matches Redis' confirmations to
    them so that ``subscribe()`` only returns once Redis actually routes the topic to us.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        channel_prefix: str,
        *,
        queue_size: int,
        ping_interval: float,
        reconnect_min: float,
        reconnect_max: float,
        subscribe_timeout: float,
    ) -> None:
        self._client = client
        self._channel_prefix = channel_prefix
        self._channel_prefix_bytes = channel_prefix.encode()
        self._queue_size = queue_size
        self._ping_interval = ping_interval
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._subscribe_timeout = subscribe_timeout
        self._topics: dict[str, _Topic] = {}
        # SUBSCRIBE/UNSUBSCRIBE sent on the current connection and not yet confirmed, per
        # topic. A topic counts as routed only when this reaches 0: after a quick
        # unsubscribe + subscribe the first "subscribe" reply is stale, not ours.
        self._inflight: dict[str, int] = {}
        self._pubsub: PubSub | None = None  # None while (re)connecting
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self.reconnects = 0  # completed reconnects after a lost connection (for metrics/tests)

    @property
    def connected(self) -> bool:
        return self._pubsub is not None

    def channel(self, topic: str) -> str:
        return self._channel_prefix + topic

    def _topic_of(self, channel: bytes | str) -> str:
        raw = channel if isinstance(channel, bytes) else channel.encode()
        return raw[len(self._channel_prefix_bytes) :].decode()

    async def subscribe(self, topic: str) -> Subscription:
        if self._closed:
            raise BrokerError("broker is closed")
        if self._reader is None:
            self._reader = asyncio.create_task(self._run(), name="broker-pubsub-reader")
        subscription = _BufferedSubscription(topic, self._queue_size, self._unsubscribe)
        state = self._topics.get(topic)
        if state is None:
            async with self._lock:
                state = self._topics.get(topic)
                if state is None:
                    state = self._topics[topic] = _Topic()
                    if self._pubsub is not None:
                        await self._send(self._pubsub, "SUBSCRIBE", [topic])
                    # While disconnected there is nothing to send: the reader subscribes all
                    # known topics when it reconnects.
                state.subscribers.add(subscription)
        else:
            state.subscribers.add(subscription)
        try:
            async with asyncio.timeout(self._subscribe_timeout):
                await state.confirmed.wait()
        except BaseException as exc:
            await subscription.close()
            if isinstance(exc, TimeoutError):
                raise BrokerError(
                    f"subscribe to {topic!r} not confirmed by Redis within "
                    f"{self._subscribe_timeout}s (pub/sub connection down?)"
                ) from None
            raise
        return subscription

    async def _unsubscribe(self, subscription: _BufferedSubscription) -> None:
        topic = subscription.topic
        state = self._topics.get(topic)
        if state is None:
            return
        # Detach synchronously so that a cancelled close() still stops delivery.
        state.subscribers.discard(subscription)
        if state.subscribers or self._closed:
            return
        async with self._lock:
            # Someone may have subscribed again while we waited for the lock.
            if self._topics.get(topic) is not state or state.subscribers:
                return
            del self._topics[topic]
            if self._pubsub is not None:
                await self._send(self._pubsub, "UNSUBSCRIBE", [topic])

    async def _send(self, pubsub: PubSub, command: str, topics: list[str]) -> None:
        """Send (UN)SUBSCRIBE for ``topics``; caller holds ``_lock``."""
        for topic in topics:
            self._inflight[topic] = self._inflight.get(topic, 0) + 1
        channels = [self.channel(t) for t in topics]
        try:
            if command == "SUBSCRIBE":
                await pubsub.subscribe(*channels)
            else:
                await pubsub.unsubscribe(*channels)
        except RedisError as exc:
            # The connection is broken; the reader notices, reconnects and re-subscribes
            # whatever still has subscribers, so the caller need not fail.
            logger.debug("pub/sub %s %s failed: %s", command, topics, exc)

    async def _run(self) -> None:
        delay = self._reconnect_min
        lost_connection = False
        failures = 0  # consecutive failed attempts; only the first of an outage is a warning
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.connect()  # type: ignore[no-untyped-call]
                async with self._lock:
                    self._inflight.clear()
                    topics = list(self._topics)
                    # Chunked so thousands of topics don't become one giant command.
                    for start in range(0, len(topics), 500):
                        await self._send(pubsub, "SUBSCRIBE", topics[start : start + 500])
                    self._pubsub = pubsub
                if lost_connection:
                    self.reconnects += 1
                    logger.warning(
                        "redis pub/sub reconnected (%d failures before); re-subscribed %d "
                        "topics (events published meanwhile are lost)",
                        failures,
                        len(topics),
                    )
                if lost_connection:
                    # Events published meanwhile are lost: tell every subscriber, so it re-reads
                    # what it shows (web chat and console sockets close; clients resync).
                    for state in self._topics.values():
                        for subscription in list(state.subscribers):
                            subscription.deliver(RESYNC_EVENT)
                lost_connection = False
                failures = 0
                delay = self._reconnect_min
                await self._read(pubsub)
            except (RedisError, OSError) as exc:
                lost_connection = True
                failures += 1
                logger.log(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "redis pub/sub connection unavailable (%s); retrying with backoff",
                    exc,
                )
            except Exception:
                # A bug here must not silently end delivery for every subscriber forever.
                lost_connection = True
                failures += 1
                logger.exception("redis pub/sub reader failed; reconnecting")
            finally:
                self._pubsub = None
                self._inflight.clear()
                for state in self._topics.values():
                    state.confirmed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            # Jitter so that many replicas don't reconnect to a restarted Redis in lockstep.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._reconnect_max)

    async def _read(self, pubsub: PubSub) -> None:
        awaiting_pong = False
        while True:
            message = await pubsub.get_message(timeout=self._ping_interval)
            if message is None:
                # A silent connection may be dead without a FIN (network partition, frozen
                # host): ping it, and give up on it if not even the PONG comes back.
                if awaiting_pong:
                    raise RedisConnectionError(
                        f"no reply to PING within {self._ping_interval}s on pub/sub connection"
                    )
                await pubsub.ping()
                awaiting_pong = True
                continue
            awaiting_pong = False
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            state = self._topics.get(self._topic_of(message["channel"]))
            if state is not None:
                for subscription in state.subscribers:
                    subscription.deliver(message["data"])
        elif kind in ("subscribe", "unsubscribe"):
            topic = self._topic_of(message["channel"])
            remaining = self._inflight.get(topic, 0) - 1
            if remaining > 0:
                self._inflight[topic] = remaining
                return
            self._inflight.pop(topic, None)
            state = self._topics.get(topic)
            if state is not None:
                state.confirmed.set()

    async def close(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        for state in self._topics.values():
            for subscription in state.subscribers:
                subscription.mark_closed()
        self._topics.clear()


class RedisBroker(Broker):
    """Broker shared by every gateway replica connected to the same Redis and ``prefix``.

    Keys: ``{prefix}queue:<queue>``, ``{prefix}seen:<key>``, ``{prefix}lock:<key>``,
    ``{prefix}presence``; pub/sub channels ``{prefix}events:<topic>``. Commands go through a
    pooled client that retries once on connection errors/timeouts (every mutating command is
    idempotent under that retry); pub/sub uses one dedicated connection per broker (see
    :class:`_PubSubHub`) that reconnects and re-subscribes by itself after a Redis restart.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "csbot:",
        subscriber_queue_size: int = DEFAULT_SUBSCRIBER_QUEUE_SIZE,
        socket_timeout: float = 5.0,
        ping_interval: float = 15.0,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        subscribe_timeout: float = 5.0,
    ) -> None:
        self._prefix = prefix
        # CLIENT SETNAME rejects spaces; the name makes the connections findable in CLIENT LIST.
        client_name = re.sub(r"\s", "_", prefix.rstrip(":")) or "csbot"
        self._redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=1),
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            socket_keepalive=True,
            client_name=f"{client_name}:cmd",
        )
        # The pub/sub connection must not retry inside redis-py (which would reconnect and
        # re-subscribe behind our back): the hub's reader owns reconnecting. Bytes, not str,
        # so PING replies parse the same whether or not anything is subscribed.
        self._pubsub_client = aioredis.Redis.from_url(
            url,
            decode_responses=False,
            retry=Retry(NoBackoff(), retries=0),
            # Bounds the connect handshake and writes; reads pass their own timeout.
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            socket_keepalive=True,
            client_name=f"{client_name}:pubsub",
        )
        self._hub = _PubSubHub(
            self._pubsub_client,
            f"{prefix}events:",
            queue_size=subscriber_queue_size,
            ping_interval=ping_interval,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
            subscribe_timeout=subscribe_timeout,
        )
        self._presence_key = f"{prefix}presence"
        self._local_locks = _KeyedLocks()
        self._claim = self._redis.register_script(_CLAIM_LUA)
        self._release = self._redis.register_script(_RELEASE_LUA)
        self._remove = self._redis.register_script(_REMOVE_LUA)
        self._set_presence = self._redis.register_script(_SET_PRESENCE_LUA)
        self._present = self._redis.register_script(_PRESENT_LUA)
        self._closed = False

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def pubsub_connected(self) -> bool:
        """Whether the shared pub/sub connection is currently up (for health checks)."""
        return self._hub.connected

    @property
    def pubsub_reconnects(self) -> int:
        return self._hub.reconnects

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:{name}"

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerError("broker is closed")

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        self._check_open()
        raw = json.dumps(event, separators=(",", ":"))
        with _redis_errors("publish"):
            await self._redis.publish(self._hub.channel(topic), raw)

    async def subscribe(self, topic: str) -> Subscription:
        self._check_open()
        return await self._hub.subscribe(topic)

    async def enqueue(self, queue: str, item: str, score: float) -> None:
        self._check_open()
        _check_score(score)
        with _redis_errors("enqueue"):
            await self._redis.zadd(self._key("queue", queue), {item: float(score)})

    async def remove(self, queue: str, item: str) -> bool:
        self._check_open()
        # Length-prefixed so that ("a:b", "c") and ("a", "b:c") get different receipts.
        receipt = self._key("removed", f"{len(queue)}:{queue}:{item}")
        with _redis_errors("remove"):
            removed = await self._remove(
                keys=[self._key("queue", queue), receipt],
                args=[item, secrets.token_hex(16), _RECEIPT_TTL_MS],
            )
        return bool(removed)

    async def queue_items(self, queue: str) -> list[str]:
        self._check_open()
        with _redis_errors("queue_items"):
            items: list[str] = await self._redis.zrange(self._key("queue", queue), 0, -1)
        return items

    async def position(self, queue: str, item: str) -> int | None:
        self._check_open()
        with _redis_errors("position"):
            rank: int | None = await self._redis.zrank(self._key("queue", queue), item)
        return None if rank is None else rank + 1

    async def first_seen(self, key: str, ttl_seconds: float) -> bool:
        self._check_open()
        _check_ttl(ttl_seconds)
        with _redis_errors("first_seen"):
            claimed = await self._claim(
                keys=[self._key("seen", key)], args=[secrets.token_hex(16), _ms(ttl_seconds)]
            )
        return bool(claimed)

    def lock(
        self, key: str, timeout: float = 30.0, ttl: float = 60.0
    ) -> AbstractAsyncContextManager[None]:
        self._check_open()
        _check_ttl(ttl)
        return self._lock(key, timeout, ttl)

    @asynccontextmanager
    async def _lock(self, key: str, timeout: float, ttl: float) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Contenders in this process queue on a local lock first, so at most one task per
        # process polls Redis for a given key.
        async with self._local_locks.hold(key, timeout):
            name = self._key("lock", key)
            token = secrets.token_hex(16)
            try:
                await self._acquire(key, name, token, _ms(ttl), deadline)
            except LockTimeout:
                raise
            except BaseException:
                # Cancelled or failed mid-command: the SET may have happened without us seeing
                # the reply. The token makes undoing it safe.
                await self._release_lock(key, name, token, quiet=True)
                raise
            try:
                yield
            finally:
                await self._release_lock(key, name, token, quiet=False)

    async def _acquire(self, key: str, name: str, token: str, ttl_ms: int, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        delay = _LOCK_POLL_MIN
        while True:
            with _redis_errors("lock"):
                if await self._claim(keys=[name], args=[token, ttl_ms]):
                    return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LockTimeout(f"lock {key!r} is held elsewhere; gave up waiting")
            await asyncio.sleep(min(remaining, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * 2, _LOCK_POLL_MAX)

    async def _release_lock(self, key: str, name: str, token: str, *, quiet: bool) -> None:
        if self._closed:
            # The connection pool is gone (shutdown): using it would open a connection nobody
            # closes. The lock expires with its ttl.
            return
        try:
            # Shielded: a cancellation arriving now must not leave the lock held until its ttl.
            released = await asyncio.shield(self._release(keys=[name], args=[token]))
        except RedisError as exc:
            # Not raised: it would mask the body's own exception, and the ttl frees the lock.
            logger.log(
                logging.DEBUG if quiet else logging.WARNING,
                "could not release lock %r (%s); it expires with its ttl",
                key,
                exc,
            )
            return
        if not released and not quiet:
            logger.warning("lock %r had expired before release: the body outlived its ttl", key)

    async def set_presence(self, member: str, ttl_seconds: float) -> None:
        self._check_open()
        ttl_ms = math.ceil(ttl_seconds * 1000) if ttl_seconds > 0 else 0
        with _redis_errors("set_presence"):
            await self._set_presence(keys=[self._presence_key], args=[member, ttl_ms])

    async def present(self) -> list[str]:
        self._check_open()
        with _redis_errors("present"):
            members: list[str] = await self._present(keys=[self._presence_key])
        return sorted(members)

    async def ping(self) -> bool:
        if self._closed:
            return False
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._hub.close()
        await self._redis.aclose()
        await self._pubsub_client.aclose()
