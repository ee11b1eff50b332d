"""Abuse limits of the public web chat: new sessions per address, messages per conversation
(moving windows of the ``limits`` package, in Redis when ``redis_url`` is set, so every replica
counts together), and open sockets per visitor token (per gateway process).

Over a limit, a session request gets 429 with ``Retry-After``, a socket 429 before the upgrade,
and a message the ``rate_limited`` error frame, which the widget retries after a pause; nothing
over the limit is stored. When Redis is unreachable the limits let traffic through (logged).
"""

from __future__ import annotations

from collections import Counter

from limits import parse

from bot.config import LimitSettings
from bot.ratelimit import Counters


class WebchatLimits:
    """The three public limits; ``sockets`` counts this process's open sockets per visitor."""

    def __init__(self, settings: LimitSettings, redis_url: str | None = None) -> None:
        self._counters = Counters(redis_url, "csbot-webchat", "webchat limits")
        self._sessions = parse(f"{settings.sessions_per_minute_per_address}/minute")
        self._messages = parse(f"{settings.messages_per_minute_per_conversation}/minute")
        self.max_sockets = settings.sockets_per_visitor
        self.sockets: Counter[str] = Counter()

    async def new_session(self, address: str) -> int:
        return await self._counters.hit(self._sessions, "session", address)

    async def new_message(self, conversation_id: str) -> int:
        return await self._counters.hit(self._messages, "message", conversation_id)

    async def close(self) -> None:
        await self._counters.close()
