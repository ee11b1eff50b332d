"""Talks to Rasa over HTTP: the REST channel for messages, the HTTP API for trackers and pauses."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.types import Button


class RasaUnavailable(RuntimeError):
    """Rasa did not answer in time or answered with an error; the caller keeps the message."""


@dataclass(frozen=True)
class BotReply:
    text: str | None = None
    buttons: list[Button] = field(default_factory=list)
    custom: dict[str, Any] | None = None


def parse_replies(items: list[dict[str, Any]]) -> list[BotReply]:
    """Rasa's REST channel answer -> BotReply list (text with buttons, custom payloads)."""
    replies = []
    for item in items:
        buttons = [
            Button(title=str(b.get("title", "")), payload=str(b.get("payload", "")))
            for b in item.get("buttons") or []
        ]
        custom = item.get("custom")
        replies.append(
            BotReply(
                text=item.get("text"),
                buttons=buttons,
                custom=custom if isinstance(custom, dict) else None,
            )
        )
    return replies


class RasaClient:
    """A client for one or more Rasa replicas; a conversation always goes to the same one."""

    def __init__(
        self,
        urls: list[str],
        token: str | None,
        session: aiohttp.ClientSession,
        timeout_seconds: float = 20.0,
    ) -> None:
        if not urls:
            raise ValueError("at least one Rasa URL is needed")
        self.urls = [u.rstrip("/") for u in urls]
        self.token = token
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    def url_for(self, conversation_id: str) -> str:
        """Stable hash of the conversation id -> replica (trackers live in one replica)."""
        digest = hashlib.sha256(conversation_id.encode()).digest()
        return self.urls[int.from_bytes(digest[:8], "big") % len(self.urls)]

    def _params(self, **extra: str) -> dict[str, str]:
        return {**({"token": self.token} if self.token else {}), **extra}

    async def _call(self, method: str, conversation_id: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.url_for(conversation_id)}{path}"
        try:
            async with self.session.request(method, url, timeout=self.timeout, **kwargs) as resp:
                if resp.status >= 400:
                    body = (await resp.text())[:300]
                    raise RasaUnavailable(f"Rasa answered {resp.status} for {path}: {body}")
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            raise RasaUnavailable(f"Rasa at {url} is not reachable: {reason}") from exc

    async def send(
        self, conversation_id: str, text: str, metadata: dict[str, Any] | None = None
    ) -> list[BotReply]:
        """One customer turn through Rasa's REST channel (sender = conversation id)."""
        body = {"sender": conversation_id, "message": text, "metadata": metadata or {}}
        items = await self._call("POST", conversation_id, "/webhooks/rest/webhook", json=body)
        if not isinstance(items, list):
            raise RasaUnavailable(f"unexpected answer from Rasa: {str(items)[:200]}")
        return parse_replies(items)

    async def tracker(self, conversation_id: str, with_events: bool = False) -> dict[str, Any]:
        """The conversation's tracker: slots, latest_message (intent + confidence), events."""
        params = self._params(include_events="ALL" if with_events else "NONE")
        result = await self._call(
            "GET", conversation_id, f"/conversations/{conversation_id}/tracker", params=params
        )
        if not isinstance(result, dict):
            raise RasaUnavailable("unexpected tracker from Rasa")
        return result

    async def _event(self, conversation_id: str, event: dict[str, Any]) -> None:
        await self._call(
            "POST",
            conversation_id,
            f"/conversations/{conversation_id}/tracker/events",
            params=self._params(),
            json=event,
        )

    async def pause(self, conversation_id: str) -> None:
        """Stop the bot from answering this conversation (it still records messages)."""
        await self._event(conversation_id, {"event": "pause"})

    async def resume(self, conversation_id: str) -> None:
        """Let the bot answer again; slots are kept."""
        await self._event(conversation_id, {"event": "resume"})
