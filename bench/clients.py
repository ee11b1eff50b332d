"""Lean load-generator clients for the widget and console protocols.

They speak exactly what ``tests/helpers.py`` (CustomerClient, AgentClient) and the browser
speak: ``POST /webchat/session`` for a visitor token, ``/webchat/ws?token=...`` with ``sync``
and ``message`` frames; the console's login form, its JSON API with the CSRF header, and
``/console/ws``. They keep less state than the test clients, so that the load generator costs
little CPU per frame.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp

Frame = dict[str, Any]


def ws_url(base_url: str, path: str = "/webchat/ws") -> str:
    return base_url.replace("http", "ws", 1) + path


async def create_session(http: aiohttp.ClientSession, base_url: str) -> tuple[str, str]:
    """A new visitor: (token, conversation id)."""
    async with http.post(f"{base_url}/webchat/session", json={"token": None}) as resp:
        if resp.status != 200:
            raise RuntimeError(f"session: HTTP {resp.status}: {(await resp.text())[:200]}")
        body = await resp.json()
    return str(body["token"]), str(body["conversation_id"])


async def open_widget(
    http: aiohttp.ClientSession, base_url: str, token: str | None
) -> aiohttp.ClientWebSocketResponse:
    """The widget's socket, with its first ``sync`` frame sent (no token: relay/echo)."""
    params = {"token": token} if token else None
    ws = await http.ws_connect(ws_url(base_url), params=params, max_msg_size=1 << 20)
    if token:
        await ws.send_str('{"type":"sync","after_seq":0}')
    return ws


async def send_message(ws: aiohttp.ClientWebSocketResponse, text: str) -> str:
    """Send a customer message frame; returns its client id."""
    client_id = uuid.uuid4().hex
    await ws.send_str(json.dumps({"type": "message", "client_id": client_id, "text": text}))
    return client_id


async def wait_frames(
    ws: aiohttp.ClientWebSocketResponse,
    predicate: Callable[[Frame], bool],
    count: int = 1,
    timeout: float = 15.0,
) -> bool:
    """Read frames until ``count`` of them match; False on timeout or a closed socket."""
    deadline = time.monotonic() + timeout
    seen = 0
    while seen < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            msg = await ws.receive(timeout=remaining)
        except TimeoutError:
            return False
        if msg.type is not aiohttp.WSMsgType.TEXT:
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.ERROR,
            ):
                return False
            continue
        if predicate(json.loads(msg.data)):
            seen += 1
    return True


def is_bot_message(frame: Frame) -> bool:
    return frame.get("type") == "message" and frame.get("sender") == "bot"


def is_any_message(frame: Frame) -> bool:
    return frame.get("type") == "message"


class SessionPool:
    """Visitor sessions created ahead of a measurement, so that a window measures turns."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http, self.base_url = http, base_url
        self._tokens: list[str] = []
        self.created_on_demand = 0

    def __len__(self) -> int:
        return len(self._tokens)

    async def fill(self, count: int, concurrency: int = 8) -> float:
        """Create ``count`` sessions; returns sessions per second."""
        started = time.perf_counter()
        left = count

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                token, _ = await create_session(self.http, self.base_url)
                self._tokens.append(token)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / max(time.perf_counter() - started, 1e-9)

    async def take(self) -> str:
        if self._tokens:
            return self._tokens.pop()
        self.created_on_demand += 1
        token, _ = await create_session(self.http, self.base_url)
        return token


class AgentConsole:
    """An agent signed in through the console's login form, with its API and websocket."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            connector=aiohttp.TCPConnector(limit=200),
        )
        self.csrf = ""

    async def login(self, username: str, password: str) -> None:
        async with self.http.get(f"{self.base_url}/console/login") as resp:
            html = await resp.text()
        form_token = re.search(r'name="csrf_token" value="([^"]+)"', html)
        if form_token is None:
            raise RuntimeError("the login page has no CSRF field")
        async with self.http.post(
            f"{self.base_url}/console/login",
            data={"username": username, "password": password, "csrf_token": form_token.group(1)},
            allow_redirects=False,
        ) as resp:
            if resp.status != 302:
                raise RuntimeError(f"console login failed: HTTP {resp.status}")
        async with self.http.get(f"{self.base_url}/console") as resp:
            page = await resp.text()
        token = re.search(r'name="csrf-token" content="([^"]+)"', page)
        if token is None:
            raise RuntimeError("the console page carries no CSRF token")
        self.csrf = token.group(1)

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(
            method,
            f"{self.base_url}/console/api{path}",
            json=body,
            headers={"X-CSRF-Token": self.csrf},
        ) as resp:
            return resp.status, await resp.json()

    async def socket(self) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(
            ws_url(self.base_url, "/console/ws"),
            headers={"Origin": self.base_url},
            max_msg_size=16 << 20,
        )

    async def close(self) -> None:
        await self.http.close()
