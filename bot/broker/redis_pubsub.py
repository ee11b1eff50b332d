"""The Redis broker's pub/sub side: one connection per process, shared by every local
subscription, that reconnects and re-subscribes by itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from bot.broker.base import RESYNC_EVENT, BrokerError, Subscription, logger
from bot.broker.shared import _BufferedSubscription
from bot.core.tasks import cancel_and_wait


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
        await cancel_and_wait(self._reader)
        self._reader = None
        for state in self._topics.values():
            for subscription in state.subscribers:
                subscription.mark_closed()
        self._topics.clear()
