"""Where rate-limit counters live: Redis when configured (every replica counts together, with
2 s timeouts so an unreachable Redis cannot hang a request), else this process's memory. Used
by the console's sign-in throttle and the web chat's abuse limits (the ``limits`` package)."""

from __future__ import annotations

import redis.asyncio as aioredis
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

REDIS_TIMEOUT_SECONDS = 2.0


class Counters:
    """A moving-window limiter over Redis or memory; ``close()`` releases the Redis pool."""

    def __init__(self, redis_url: str | None, key_prefix: str) -> None:
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
        self.limiter = MovingWindowRateLimiter(storage)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
