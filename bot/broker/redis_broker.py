"""The Redis broker: shared by every gateway replica connected to the same Redis and prefix,
so that an event published by replica A reaches websocket subscribers on replica B, a queued
conversation can be claimed exactly once, and so on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import RedisError

from bot.broker.base import (
    DEFAULT_SUBSCRIBER_QUEUE_SIZE,
    Broker,
    BrokerError,
    LockTimeout,
    Subscription,
    check_score,
    check_ttl,
    encode_event,
    logger,
)
from bot.broker.redis_pubsub import _PubSubHub
from bot.broker.shared import _KeyedLocks

# SET NX PX, made idempotent: if the reply to our own SET was lost and the command is retried,
# the key holds our token and we must still report success (otherwise a retried first_seen()
# would drop a message as a duplicate, and a retried lock acquire would wait for its own lock).
_CLAIM_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return redis.call('GET', KEYS[1]) == ARGV[1] and 1 or 0
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
return redis.call('GET', KEYS[2]) == ARGV[2] and 1 or 0
"""

# Presence is a sorted set scored by expiry time. The clock is Redis' own (TIME), so replicas
# with skewed clocks still agree on who is present. Needs Redis >= 5 (effects replication).
_NOW_MS_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_SET_PRESENCE_LUA = (
    _NOW_MS_LUA
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return 1
"""
)

_PRESENT_LUA = (
    _NOW_MS_LUA
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""
)

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

        def connect(role: str, *, decode_responses: bool, retry: Retry) -> aioredis.Redis:
            client: aioredis.Redis = aioredis.Redis.from_url(
                url,
                decode_responses=decode_responses,
                retry=retry,
                # Bounds the connect handshake and writes; pub/sub reads pass their own timeout.
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                socket_keepalive=True,
                client_name=f"{client_name}:{role}",
            )
            return client

        self._redis = connect(
            "cmd",
            decode_responses=True,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=1),
        )
        # The pub/sub connection must not retry inside redis-py (which would reconnect and
        # re-subscribe behind our back): the hub's reader owns reconnecting. Bytes, not str,
        # so PING replies parse the same whether or not anything is subscribed.
        self._pubsub_client = connect(
            "pubsub", decode_responses=False, retry=Retry(NoBackoff(), retries=0)
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

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        self._check_open()
        raw = encode_event(event)
        with _redis_errors("publish"):
            await self._redis.publish(self._hub.channel(topic), raw)

    async def subscribe(self, topic: str) -> Subscription:
        self._check_open()
        return await self._hub.subscribe(topic)

    async def enqueue(self, queue: str, item: str, score: float) -> None:
        self._check_open()
        check_score(score)
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
        check_ttl(ttl_seconds)
        with _redis_errors("first_seen"):
            claimed = await self._claim(
                keys=[self._key("seen", key)], args=[secrets.token_hex(16), _ms(ttl_seconds)]
            )
        return bool(claimed)

    def lock(
        self, key: str, timeout: float = 30.0, ttl: float = 60.0
    ) -> AbstractAsyncContextManager[None]:
        self._check_open()
        check_ttl(ttl)
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
