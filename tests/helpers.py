"""Test clients that act like real users: a widget customer and a console agent, over HTTP;
and the ports of the servers a test runs in its own process."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from scripts import devctl

if TYPE_CHECKING:  # not at run time: the action tests load this under Rasa's Python 3.10
    from bot.core.types import Attachment

Frame = dict[str, Any]

_held_sockets: list[socket.socket] = []


async def listen(runner: web.AppRunner, port: int = 0, **options: Any) -> int:
    """Serve ``runner`` on 127.0.0.1 and return its port. With ``port`` 0 the kernel picks a
    free port as it binds, so nothing else can take it in between (a port picked first and
    bound later can be); a given ``port`` serves again where an earlier site served."""
    await web.TCPSite(runner, "127.0.0.1", port, **options).start()
    return int(runner.addresses[-1][1])


def dead_port() -> int:
    """A loopback port that refuses connections for the whole test run (a dead Rasa, Redis...).

    This process keeps a socket bound to it without listening: connecting is refused at once,
    and no other process can bind the port meanwhile.
    """
    if not _held_sockets:
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        _held_sockets.append(held)
    return int(_held_sockets[0].getsockname()[1])


def redis_server_args(port: int) -> list[str]:
    """``redis-server`` arguments for a private server on 127.0.0.1:``port`` that keeps nothing
    on disk, so a test can kill it and start it again empty on the same port."""
    return ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


async def forward(request: web.Request, upstream: str) -> web.Response:
    """Pass ``request`` on to ``upstream`` (a base URL) and answer with its JSON answer: the
    body of the proxies that tests put in front of the real Rasa."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            request.method,
            f"{upstream}{request.path_qs}",
            data=await request.read(),
            headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
        ) as answer,
    ):
        return web.Response(
            status=answer.status, body=await answer.read(), content_type="application/json"
        )


class FrameLog:
    """Frames read from a websocket, with a wait for the first one that matches."""

    def __init__(self) -> None:
        self.items: list[Frame] = []
        self._arrived = asyncio.Event()

    async def read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                frame = msg.json()
                frame["_at"] = time.perf_counter()
                self.items.append(frame)
                self._arrived.set()

    async def wait(
        self, predicate: Callable[[Frame], bool], timeout: float = 30.0, after: int = 0
    ) -> Frame:
        """The first frame (from index ``after`` on) that matches, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.items[after:]:
                if predicate(frame):
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [
                    (f.get("type"), f.get("sender"), str(f.get("text", ""))[:60])
                    for f in self.items[after:]
                ]
                raise AssertionError(f"no matching frame within {timeout} s; frames: {seen}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass


class CustomerClient:
    """Talks to the gateway exactly like widget.js: session token, websocket frames."""

    def __init__(self, base_url: str, http: aiohttp.ClientSession) -> None:
        self.base_url, self.http = base_url, http
        self.token: str | None = None
        self.conversation_id: str | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.log = FrameLog()
        self.frames = self.log.items
        self._reader: asyncio.Task[None] | None = None

    async def connect(
        self, token: str | None = None, user: dict[str, str] | None = None
    ) -> CustomerClient:
        """``user``: the shop vouches for a signed-in customer (see gateway_fixtures.shop_user)."""
        body: dict[str, Any] = {"token": token or self.token}
        if user is not None:
            body["user"] = user
        async with self.http.post(f"{self.base_url}/webchat/session", json=body) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
        self.token, self.conversation_id = body["token"], body["conversation_id"]
        ws_url = self.base_url.replace("http", "ws", 1) + "/webchat/ws"
        self.ws = await self.http.ws_connect(ws_url, params={"token": self.token})
        self._reader = asyncio.create_task(self.log.read(self.ws))
        await self.ws.send_json({"type": "sync", "after_seq": self.max_seq()})
        return self

    def max_seq(self) -> int:
        return max((f["seq"] for f in self.frames if f.get("type") == "message"), default=0)

    async def send(
        self, text: str, payload: str | None = None, client_id: str | None = None
    ) -> str:
        assert self.ws is not None
        client_id = client_id or str(uuid.uuid4())
        frame: Frame = {"type": "message", "client_id": client_id, "text": text}
        if payload is not None:
            frame["payload"] = payload
        await self.ws.send_json(frame)
        return client_id

    async def wait_for(
        self, predicate: Callable[[Frame], bool], timeout: float = 30.0, after: int = 0
    ) -> Frame:
        return await self.log.wait(predicate, timeout, after)

    async def say(self, text: str, expect: str, timeout: float = 30.0, **kw: Any) -> Frame:
        """Send a message and wait for a non-customer message frame containing ``expect``."""
        mark = len(self.frames)
        await self.send(text, **kw)
        return await self.wait_for(
            lambda f: (
                f.get("type") == "message"
                and f.get("sender") != "customer"
                and expect in f.get("text", "")
            ),
            timeout,
            after=mark,
        )

    def texts(self, sender: str | None = None) -> list[str]:
        return [
            f["text"]
            for f in self.frames
            if f.get("type") == "message" and (sender is None or f.get("sender") == sender)
        ]

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


class AgentClient:
    """Logs in through the console's login form and uses its JSON API and websocket."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.log = FrameLog()
        self.events = self.log.items
        self._reader: asyncio.Task[None] | None = None

    async def login(self, username: str, password: str) -> AgentClient:
        async with self.http.get(f"{self.base_url}/console/login") as resp:
            html = await resp.text()
        form_token = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert form_token, "login page has a CSRF field"
        async with self.http.post(
            f"{self.base_url}/console/login",
            data={"username": username, "password": password, "csrf_token": form_token.group(1)},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 302, f"login failed: {resp.status} {await resp.text()}"
        async with self.http.get(f"{self.base_url}/console") as resp:
            page = await resp.text()
        token = re.search(r'name="csrf-token" content="([^"]+)"', page)
        assert token, "console page carries the session CSRF token"
        self.csrf = token.group(1)
        return self

    async def api(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        async with self.http.request(
            method,
            f"{self.base_url}/console/api{path}",
            json=json,
            headers={"X-CSRF-Token": self.csrf},
        ) as resp:
            return resp.status, await resp.json()

    async def open_socket(self) -> None:
        self.ws = await self.http.ws_connect(self.base_url.replace("http", "ws", 1) + "/console/ws")
        self._reader = asyncio.create_task(self.log.read(self.ws))

    async def wait_event(
        self, predicate: Callable[[Frame], bool], timeout: float = 30.0, after: int = 0
    ) -> Frame:
        return await self.log.wait(predicate, timeout, after)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.http.close()


def started(stack: devctl.Stack, what: str = "Rasa") -> devctl.Stack:
    """``stack`` started, or the test failed with what the servers said (never skipped)."""
    try:
        stack.start()
    except devctl.SetupError as exc:
        stack.stop()
        pytest.fail(f"could not start {what}: {exc}")
    return stack


def png_bytes(
    width: int = 48, height: int = 32, rgb: tuple[int, int, int] = (30, 120, 200)
) -> bytes:
    """A real (decodable) PNG of one colour: browsers draw it, so a test can check it showed."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def stored_files(directory: Path) -> list[Path]:
    """The files a gateway's local file storage holds (none before its first upload)."""
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


async def served(base_url: str, http: aiohttp.ClientSession, attachment: Attachment) -> bytes:
    """A stored attachment's bytes, as the gateway serves them (GET /files/...)."""
    assert attachment.path is not None
    async with http.get(base_url + attachment.path) as resp:
        assert resp.status == 200
        return await resp.read()
