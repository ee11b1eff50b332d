"""Talks to Rasa over HTTP: a channel for messages, the HTTP API for trackers and pauses.

Messages go to Rasa's ``gateway`` channel (rasa_addons/gateway_channel.py, enabled in
credentials.yml), which answers with the replies and what NLU understood in one request. A Rasa
without it (404) gets the plain REST channel instead, and the NLU is read from the tracker.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import structlog

from bot.core.types import Attachment, BotReply, Button, Understood

log = structlog.get_logger(__name__)

GATEWAY_WEBHOOK = "/webhooks/gateway/webhook"
REST_WEBHOOK = "/webhooks/rest/webhook"
REST_ONLY_RECHECK_SECONDS = 300.0


class RasaUnavailable(RuntimeError):
    """Rasa did not answer in time or answered with an error; the caller keeps the message."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status when Rasa answered with an error


@dataclass(frozen=True)
class BotAnswer:
    """The bot's replies to one message; ``nlu`` and ``paused`` are None when Rasa did not
    say (the plain REST channel): read the tracker for them."""

    replies: list[BotReply]
    nlu: Understood | None = None
    paused: bool | None = None
    error: str | None = None  # Rasa failed while handling the message (replies: said before)


def parse_replies(items: list[dict[str, Any]]) -> list[BotReply]:
    """Rasa's REST channel answer -> BotReply list (text with buttons, custom payloads)."""
    replies = []
    for item in items:
        buttons = [
            Button(title=str(b.get("title", "")), payload=str(b.get("payload", "")))
            for b in item.get("buttons") or []
        ]
        custom = item.get("custom")
        text = item.get("text")
        if not text and isinstance(custom, dict) and isinstance(custom.get("text"), str):
            # A custom response the channels cannot render degrades to its text (the rest of
            # it, e.g. a widget-specific card, is for the bot's own integrations).
            text = custom["text"]
        replies.append(
            BotReply(
                text=text,
                buttons=buttons,
                custom=custom if isinstance(custom, dict) else None,
                attachment=outside_attachment("image", item.get("image"))
                or outside_attachment("file", item.get("attachment")),
            )
        )
    return replies


def outside_attachment(kind: str, value: Any) -> Attachment | None:
    """A Rasa ``image`` (a URL) or ``attachment`` (a URL, or {"url", "name"}) response as an
    attachment; None for anything that is not an http(s) address."""
    name = None
    if isinstance(value, dict):
        name, value = value.get("name") or value.get("title"), value.get("url")
    if not isinstance(value, str) or len(value) > 2000:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    last = unquote(parts.path.rsplit("/", 1)[-1]) or ("image" if kind == "image" else "file")
    content_type = mimetypes.guess_type(last)[0] or (
        "image/*" if kind == "image" else "application/octet-stream"
    )
    label = name if isinstance(name, str) and name.strip() else last
    return Attachment(kind, label[:100], content_type, url=value.strip())


def parse_answer(body: Any) -> BotAnswer:
    """The gateway channel's answer (an object) or the REST channel's (a list) -> BotAnswer."""
    if isinstance(body, list):
        return BotAnswer(parse_replies(body))
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise RasaUnavailable(f"unexpected answer from Rasa: {str(body)[:200]}")
    nlu = body.get("nlu")
    understood = None
    if isinstance(nlu, dict):
        intent, confidence = nlu.get("intent"), nlu.get("confidence")
        understood = Understood(
            intent if isinstance(intent, str) else None,
            float(confidence) if isinstance(confidence, int | float) else None,
        )
    paused, error = body.get("paused"), body.get("error")
    return BotAnswer(
        parse_replies(body["messages"]),
        understood,
        paused if isinstance(paused, bool) else None,
        str(error)[:300] if error else None,
    )


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
        # Replicas found to have no gateway channel (monotonic time when seen): they get the
        # REST channel, and are asked again after REST_ONLY_RECHECK_SECONDS (a rolling deploy).
        self._rest_only: dict[str, float] = {}

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
                    raise RasaUnavailable(
                        f"Rasa answered {resp.status} for {path}: {body}", status=resp.status
                    )
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            raise RasaUnavailable(f"Rasa at {url} is not reachable: {reason}") from exc

    async def turn(
        self, conversation_id: str, text: str, metadata: dict[str, Any] | None = None
    ) -> BotAnswer:
        """One customer turn: the replies, and what NLU understood if Rasa says."""
        body = {"sender": conversation_id, "message": text, "metadata": metadata or {}}
        replica = self.url_for(conversation_id)
        seen = self._rest_only.get(replica)
        if seen is not None and time.monotonic() - seen > REST_ONLY_RECHECK_SECONDS:
            del self._rest_only[replica]
            seen = None
        if seen is None:
            try:
                answer = await self._call(
                    "POST", conversation_id, GATEWAY_WEBHOOK, json=body, params=self._params()
                )
                return parse_answer(answer)
            except RasaUnavailable as exc:
                if exc.status != 404:
                    raise
                self._rest_only[replica] = time.monotonic()
                log.warning(
                    "rasa has no gateway channel; using its REST channel and reading trackers",
                    rasa=replica,
                    fix="enable rasa_addons.gateway_channel.GatewayInput in credentials.yml",
                )
        items = await self._call(
            "POST", conversation_id, REST_WEBHOOK, json=body, params=self._params()
        )
        if not isinstance(items, list):
            raise RasaUnavailable(f"unexpected answer from Rasa: {str(items)[:200]}")
        return BotAnswer(parse_replies(items))

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
