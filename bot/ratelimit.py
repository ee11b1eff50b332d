"""Where rate-limit counters live: Redis when configured (every replica counts together, with
2 s timeouts so an unreachable Redis cannot hang a request), else this process's memory. Used
by the console's sign-in throttle and the web chat's abuse limits (the ``limits`` package).

When Redis cannot be reached the counters let traffic through and log it: a broken limit must
not lock every agent or customer out."""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 2.0


class Counters:
    """A moving-window limiter over Redis or memory; ``close()`` releases the Redis pool."""

    def __init__(self, redis_url: str | None, key_prefix: str, name: str) -> None:
        self.name = name  # for the log: "login throttle", "webchat limits"
        self._pool: aioredis.ConnectionPool | None = None
        storage: Storage = MemoryStorage()
        if redis_url:
            self._pool = aioredis.ConnectionPool.from_url(
                redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            storage = RedisStorage(
                f"async+{redis_url}",
                implementation="redispy",
                key_prefix=key_prefix,
                connection_pool=self._pool,  # type: ignore[arg-type]  # documented option
            )
        self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, item: RateLimitItem, *keys: str) -> int:
        """Count one event: 0 when it is within ``item`` (and was counted), else the seconds
        until it would be (not counted)."""
        try:
            if await self._limiter.hit(item, *keys):
                return 0
        except Exception as exc:
            self._unavailable(exc)
            return 0
        return await self.wait(item, *keys)

    async def wait(self, item: RateLimitItem, *keys: str) -> int:
        """Seconds until one more event is within ``item`` (0: now), without counting one."""
        try:
            if await self._limiter.test(item, *keys):
                return 0
            stats = await self._limiter.get_window_stats(item, *keys)
        except Exception as exc:
            self._unavailable(exc)
            return 0
        return max(1, int(stats.reset_time - time.time() + 0.999))

    async def clear(self, item: RateLimitItem, *keys: str) -> None:
        try:
            await self._limiter.clear(item, *keys)
        except Exception as exc:
            self._unavailable(exc)

    def _unavailable(self, exc: Exception) -> None:
        log.warning("%s unavailable, not limiting: %s", self.name, type(exc).__name__)

    @property
    def pool(self) -> aioredis.ConnectionPool | None:
        """The Redis connections (with their timeouts), for other counts kept beside these;
        None without Redis. Closed by :meth:`close`."""
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
