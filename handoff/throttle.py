"""Throttling of console sign-ins: per address, and per address + username, in tiers that grow
(5 failures a minute, 10 in 15 minutes, 20 an hour for one account from one address; 20 a
minute and 60 an hour from one address). Shared by every gateway replica through Redis when
``redis_url`` is set (the ``limits`` package, moving windows), in memory otherwise.

The account's owner signing in from their own address is never locked out by someone guessing
elsewhere: no limit is per username alone. When Redis cannot be reached, sign-ins are let
through (and the failure logged) rather than locking every agent out.
"""

from __future__ import annotations

import logging
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

PER_ACCOUNT = "5/minute;10/15 minutes;20/hour"
PER_ADDRESS = "20/minute;60/hour"
NAMESPACE = "csbot-login"


def _storage(redis_url: str | None) -> Storage:
    if not redis_url:
        return MemoryStorage()
    return RedisStorage(f"async+{redis_url}", implementation="redispy", key_prefix=NAMESPACE)


class LoginThrottle:
    """Counts failed sign-ins and says how long an address (and account) must wait."""

    def __init__(
        self,
        redis_url: str | None = None,
        per_account: str = PER_ACCOUNT,
        per_address: str = PER_ADDRESS,
    ) -> None:
        self._limiter = MovingWindowRateLimiter(_storage(redis_url))
        self._per_account = parse_many(per_account)
        self._per_address = parse_many(per_address)

    def _limits(self, address: str, username: str) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
        account = username.strip().casefold()
        return [(item, ("addr", address)) for item in self._per_address] + [
            (item, ("account", address, account)) for item in self._per_account
        ]

    async def retry_after(self, address: str, username: str) -> int:
        """Seconds before the next sign-in from ``address`` as ``username`` may be tried."""
        wait = 0.0
        try:
            for item, keys in self._limits(address, username):
                if not await self._limiter.test(item, *keys):
                    stats = await self._limiter.get_window_stats(item, *keys)
                    wait = max(wait, stats.reset_time - time.time())
        except Exception as exc:  # Redis down: let people sign in
            log.warning("login throttle unavailable, not throttling: %s", type(exc).__name__)
            return 0
        return max(1, int(wait + 0.999)) if wait > 0 else 0

    async def record_failure(self, address: str, username: str) -> None:
        try:
            for item, keys in self._limits(address, username):
                await self._limiter.hit(item, *keys)
        except Exception as exc:
            log.warning("login throttle unavailable, failure not counted: %s", type(exc).__name__)

    async def reset(self, address: str, username: str) -> None:
        """A good sign-in forgets that account's failures from that address."""
        try:
            for item, keys in self._limits(address, username)[len(self._per_address) :]:
                await self._limiter.clear(item, *keys)
        except Exception as exc:
            log.warning("login throttle unavailable, not reset: %s", type(exc).__name__)
