"""``python -m bot chat``: talk to the running product from a terminal, as a web chat customer.

It speaks the widget's protocol (docs/widget.md) to the gateway, so everything the widget gets
happens here too: the bot's answers, buttons (type their number), the handoff, the queue, an
agent joining from the console, the rating at the end. Made for bot designers trying a change
without a browser; end with an empty line's Ctrl-D, or /quit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from typing import Any, TextIO

import aiohttp

PROMPT_HELP = "Type a message, a button's number to press it, /quit to leave."


class ChatError(RuntimeError):
    """Something the person at the terminal can act on."""


class TerminalChat:
    def __init__(self, base_url: str, out: TextIO, user: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.out = out
        self.user = user
        self.buttons: list[dict[str, str]] = []  # the newest message's, numbered from 1
        self.seen: set[int] = set()
        self.replies = 0  # messages from the bot, people or the gateway

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    async def open(self, http: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
        body: dict[str, Any] = {"token": None}
        if self.user:
            body["user"] = self.user
        try:
            async with http.post(f"{self.base_url}/webchat/session", json=body) as resp:
                answer = await resp.json(content_type=None)
                if resp.status != 200:
                    raise ChatError(f"the gateway refused a session: {answer.get('message')}")
        except aiohttp.ClientConnectionError:
            raise ChatError(
                f"cannot reach the gateway at {self.base_url}: is `make run` running?"
            ) from None
        ws_url = self.base_url.replace("http", "ws", 1) + "/webchat/ws"
        ws = await http.ws_connect(ws_url, params={"token": answer["token"]})
        await ws.send_json({"type": "sync", "after_seq": 0})
        verified = " (signed in to the shop)" if answer.get("verified") else ""
        self.say(f"Connected to {self.base_url}{verified}. {PROMPT_HELP}")
        return ws

    def show(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":
            seq = frame.get("seq")
            if not isinstance(seq, int) or seq in self.seen or frame.get("sender") == "customer":
                return
            self.seen.add(seq)
            self.replies += 1
            sender = frame.get("sender")
            name = frame.get("sender_name")
            who = {"bot": "bot", "system": "·"}.get(str(sender), f"{name or 'agent'} (agent)")
            self.say(f"{who}: {frame.get('text', '')}")
            self.buttons = [b for b in frame.get("buttons") or [] if isinstance(b, dict)]
            for number, button in enumerate(self.buttons, start=1):
                self.say(f"    [{number}] {button.get('title')}")
        elif kind == "queue":
            self.say(f"  (in the queue: number {frame.get('position')})")
        elif kind == "agent_joined":
            self.say(f"  ({frame.get('name')} joined)")
        elif kind == "state":
            self.say(f"  (conversation: {frame.get('state')})")
        elif kind == "error":
            self.say(f"  ! {frame.get('message')}")

    def outgoing(self, line: str) -> dict[str, Any] | None:
        """The frame for a typed line: a button's number presses it; None for nothing to send."""
        text = line.strip()
        if not text:
            return None
        frame: dict[str, Any] = {"type": "message", "client_id": uuid.uuid4().hex, "text": text}
        if text.isdigit() and 1 <= int(text) <= len(self.buttons):
            button = self.buttons[int(text) - 1]
            frame.update(text=button.get("title", text), payload=button.get("payload"))
        return frame


async def _read_frames(ws: aiohttp.ClientWebSocketResponse, chat: TerminalChat) -> None:
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            with contextlib.suppress(ValueError):
                chat.show(json.loads(message.data))


async def run(
    base_url: str,
    lines: TextIO,
    out: TextIO,
    user: dict[str, str] | None = None,
    linger: float = 3.0,
) -> int:
    """Chat until /quit or the end of ``lines``; then wait up to ``linger`` seconds for the
    last answers (a script piped in gets them too)."""
    chat = TerminalChat(base_url, out, user)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        try:
            ws = await chat.open(http)
        except ChatError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 2
        reader = asyncio.create_task(_read_frames(ws, chat))
        try:
            while True:
                line = await loop.run_in_executor(None, lines.readline)
                if not line or line.strip() == "/quit":
                    break
                frame = chat.outgoing(line)
                if frame is None:
                    continue
                before = chat.replies
                await ws.send_json(frame)
                # Let the answer arrive before the next line (as a person would wait).
                for _ in range(int(linger * 10)):
                    if chat.replies > before:
                        await asyncio.sleep(0.3)  # a second bubble, buttons
                        break
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.2)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await ws.close()
    return 0
