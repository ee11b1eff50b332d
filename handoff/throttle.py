"""Throttling of console sign-ins: per address, and per address + username, in tiers that grow
(5 attempts a minute, 10 in 15 minutes, 20 an hour for one account from one address; 20 a
minute and 60 an hour from one address). Shared by every gateway replica through Redis when
``redis_url`` is set (the ``limits`` package, moving windows), in memory otherwise.

An attempt is counted before its password is checked, atomically, so a burst of parallel
attempts cannot slip past the limit; a good sign-in clears that account's count. The owner
signing in from their own address is never locked out by someone guessing elsewhere: no limit
is per username alone. When Redis cannot be reached (2 s timeouts), sign-ins are let through
and the failure is logged, rather than locking every agent out.
"""

from __future__ import annotations

from limits import RateLimitItem, parse_many

from bot.ratelimit import Counters

PER_ACCOUNT = "5/minute;10/15 minutes;20/hour"
PER_ADDRESS = "20/minute;60/hour"
NAMESPACE = "csbot-login"


class LoginThrottle:
    """Counts sign-in attempts and says how long an address (and account) must wait."""

    def __init__(
        self,
        redis_url: str | None = None,
        per_account: str = PER_ACCOUNT,
        per_address: str = PER_ADDRESS,
    ) -> None:
        self._counters = Counters(redis_url, NAMESPACE, "login throttle")
        self._per_account = parse_many(per_account)
        self._per_address = parse_many(per_address)

    def _limits(self, address: str, username: str) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
        account = username.strip().casefold()
        return [(item, ("addr", address)) for item in self._per_address] + [
            (item, ("account", address, account)) for item in self._per_account
        ]

    async def attempt(self, address: str, username: str) -> int:
        """Count one sign-in attempt from ``address`` as ``username``: 0 when it may go ahead,
        else the seconds to wait (the attempt is then not counted further)."""
        for item, keys in self._limits(address, username):
            if await self._counters.hit(item, *keys):
                return await self.retry_after(address, username)
        return 0

    async def retry_after(self, address: str, username: str) -> int:
        """Seconds before the next attempt from ``address`` as ``username`` may go ahead."""
        waits = [
            await self._counters.wait(item, *keys) for item, keys in self._limits(address, username)
        ]
        return max(waits)

    async def reset(self, address: str, username: str) -> None:
        """A good sign-in forgets that account's attempts from that address."""
        for item, keys in self._limits(address, username)[len(self._per_address) :]:
            await self._counters.clear(item, *keys)

    async def close(self) -> None:
        await self._counters.close()
