"""Abuse limits of the public web chat: new sessions per address, messages per conversation
(moving windows of the ``limits`` package), and open sockets per visitor token, all in Redis when
``redis_url`` is set, so every replica counts together, else in this process.

Over a limit, a session request gets 429 with ``Retry-After``, a socket 429 before the upgrade,
and a message the ``rate_limited`` error frame, which the widget retries after a pause; nothing
over the limit is stored. When Redis is unreachable the limits let traffic through (logged).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter

import redis.asyncio as aioredis
from limits import parse

from bot.config import LimitSettings
from bot.ratelimit import Counters

log = logging.getLogger(__name__)

# Each open socket holds a slot: a member of the visitor's sorted set in Redis, scored by when
# it lapses. An open socket renews its slot every SLOT_RENEW_SECONDS; a replica that dies
# without releasing its slots loses them after SLOT_TTL_SECONDS.
SLOT_TTL_SECONDS = 90
SLOT_RENEW_SECONDS = 30
# Times are Redis's own (TIME), so replicas with drifting clocks agree on when a slot lapses.
_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 "
_TAKE_SLOT = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
)
# Renewing re-adds a slot that Redis lost (a restart or a failover), so open sockets count again.
_RENEW_SLOT = (
    _NOW
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""
)


class SocketSlots:
    """Open sockets per visitor, at most ``limit``: in Redis across replicas when configured
    (checked and taken in one script, so two replicas cannot both take the last slot), else in
    this process. If Redis cannot be reached, sockets are let in (logged)."""

    def __init__(self, limit: int, pool: aioredis.ConnectionPool | None) -> None:
        """``pool``: the Redis connections to count in (the rate-limit counters'), or None."""
        self.limit = limit
        self.local: Counter[str] = Counter()
        self._redis = aioredis.Redis(connection_pool=pool) if pool is not None else None
        self._take = self._redis.register_script(_TAKE_SLOT) if self._redis else None
        self._renew = self._redis.register_script(_RENEW_SLOT) if self._redis else None

    @staticmethod
    def _key(visitor: str) -> str:
        return f"csbot-webchat:sockets:{visitor}"

    async def take(self, visitor: str) -> str | None:
        """A slot id for one more socket of ``visitor``, or None when all are taken."""
        slot = uuid.uuid4().hex
        if self._take is None:
            if self.local[visitor] >= self.limit:
                return None
            self.local[visitor] += 1
            return slot
        try:
            taken = await self._take(
                keys=[self._key(visitor)], args=[self.limit, slot, SLOT_TTL_SECONDS]
            )
        except Exception as exc:
            log.warning("webchat socket slots unavailable, not limiting: %s", type(exc).__name__)
            return slot
        return slot if taken else None

    async def renew(self, visitor: str, slot: str) -> None:
        if self._renew is None:
            return
        try:
            await self._renew(keys=[self._key(visitor)], args=[slot, SLOT_TTL_SECONDS])
        except Exception as exc:
            log.debug("webchat socket slot not renewed: %s", type(exc).__name__)

    async def release(self, visitor: str, slot: str) -> None:
        if self._redis is None:
            self.local[visitor] -= 1
            if self.local[visitor] <= 0:
                del self.local[visitor]
            return
        try:
            await self._redis.zrem(self._key(visitor), slot)
        except Exception as exc:
            log.debug("webchat socket slot not released: %s", type(exc).__name__)


class WebchatLimits:
    """The three public limits."""

    def __init__(self, settings: LimitSettings, redis_url: str | None = None) -> None:
        self._counters = Counters(redis_url, "csbot-webchat", "webchat limits")
        self._sessions = parse(f"{settings.sessions_per_minute_per_address}/minute")
        self._messages = parse(f"{settings.messages_per_minute_per_conversation}/minute")
        self.sockets = SocketSlots(settings.sockets_per_visitor, self._counters.pool)

    async def new_session(self, address: str) -> int:
        return await self._counters.hit(self._sessions, "session", address)

    async def new_message(self, conversation_id: str) -> int:
        return await self._counters.hit(self._messages, "message", conversation_id)

    async def close(self) -> None:
        await self._counters.close()  # (the socket slots' Redis connections too)
