"""Building blocks of the reliability tests: real processes that can be killed, and clients
that recover the way the real ones do.

* :class:`GatewayProcess` runs ``python -m bot serve`` as a child process (its own session, so
  ``kill -9`` hits only it) and waits for ``/healthz``.
* :class:`RedisServer` is a private ``redis-server`` on a free port, without persistence, that
  a test can kill and start again on the same port.
* :class:`StubRasa` answers Rasa's REST webhook and tracker endpoints by echoing the text, so
  every answer can be matched to its question; :class:`RasaSwitch` is a proxy in front of the
  real Rasa that can be stopped (connections refused) and started again on the same port.
* :class:`WidgetClient` speaks the widget protocol like ``widget.js``: it keeps unacknowledged
  messages, reconnects with backoff, syncs by seq and resends with the same ``client_id``, and
  renders each seq once. :class:`ConsoleClient` behaves like ``console.js``: live events, and a
  refresh of the open conversation on every reconnect and every state change.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import yaml
from aiohttp import web

from bot.core.types import Direction, StoredMessage
from bot.store import Store
from handoff.auth import hash_password
from scripts import devctl
from tests.gateway_fixtures import SHOP_SECRET
from tests.helpers import AgentClient, listen, redis_server_args

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_PYTHON = ROOT / ".venv" / "bin" / "python"
SECRET_KEY = "reliability-secret-key-0123456789abcdef"
AGENT_PASSWORD = "correct-horse-battery"
# Settings the gateway reads from the environment; the test's own values must not leak in.
GATEWAY_ENV_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "RASA_URL",
    "RASA_TOKEN",
    "GATEWAY_SECRET_KEY",
    "GATEWAY_PORT",
    "DEMO_AGENT_PASSWORD",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_PUBLIC_URL",
    "TELEGRAM_SECRET_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
)

Frame = dict[str, Any]


# --- waiting -----------------------------------------------------------------------------------


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]],
    timeout: float,
    what: str,
    interval: float = 0.05,
    describe: Callable[[], str] | None = None,
) -> None:
    """Poll ``check`` (plain or async) until it is true; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            detail = f"; {describe()}" if describe is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        await asyncio.sleep(interval)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- gateway processes -------------------------------------------------------------------------


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


UNLIMITED = {
    "sessions_per_minute_per_address": 1_000_000,
    "messages_per_minute_per_conversation": 1_000_000,
    "sockets_per_visitor": 1_000,
}


def write_gateway_config(path: Path, **overrides: Any) -> Path:
    """A gateway.yml for the tests: secrets and URLs from the environment, fast retries."""
    config: dict[str, Any] = {
        "http": {"host": "127.0.0.1"},
        "secret_key": "${GATEWAY_SECRET_KEY}",
        "rasa": {
            "urls": ["${RASA_URL}"],
            "token": "${RASA_TOKEN:-}",
            "timeout_seconds": 10,
            "retry_seconds": 0.5,
            "offer_human_after_seconds": 60,
        },
        "hours": {"always_open": True},
        # Customers may come signed in to the shop (WidgetClient(user=shop_user(...))).
        "identity": {"shop_secret": SHOP_SECRET},
        # These tests are crowds from one address on purpose: lift the abuse limits.
        "limits": UNLIMITED,
        "demo_agent": None,
        "log_format": "console",
        "log_level": "INFO",
    }
    path.write_text(yaml.safe_dump(_deep_merge(config, overrides), sort_keys=False))
    return path


class GatewayProcess:
    """``python -m bot serve`` as a child process on a fixed port; restartable after a kill."""

    def __init__(
        self, name: str, config: Path, env: dict[str, str], log_dir: Path, port: int | None = None
    ) -> None:
        self.name, self.config, self.log_dir = name, config, log_dir
        self.port = port or devctl.free_port()
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = log_dir / f"gateway-{name}.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in GATEWAY_ENV_VARS}
        env.update(self.env)
        env.update({"PYTHONUNBUFFERED": "1", "GATEWAY_SECRET_KEY": SECRET_KEY})
        return env

    async def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until ``/healthz`` answers 200."""
        await self.spawn()
        await self.wait_healthy(timeout)

    async def spawn(self) -> None:
        """Start the process (without waiting for it to be ready)."""
        assert not self.running, f"{self.name} already runs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts} on port {self.port} =====\n".encode())
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                str(GATEWAY_PYTHON),
                "-m",
                "bot",
                "--config",
                str(self.config),
                "serve",
                "--port",
                str(self.port),
                cwd=self.log_dir,
                env=self._environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait for ``/healthz`` to answer 200 (the broker is reachable); fail if it exits."""

        async def healthy() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(
                    f"gateway {self.name} exited with {self.proc.returncode}; "
                    f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
                )
            try:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"{self.url}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r,
                ):
                    return r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        await wait_until(
            healthy,
            timeout,
            f"gateway {self.name} on {self.url}/healthz",
            interval=0.1,
            describe=lambda: f"log:\n{_tail(self.log_path)}",
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        if self.proc is not None and self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc is None or not self.running:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.kill()

    def log_text(self) -> str:
        """Everything the process wrote, over all its starts."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Gateways:
    """Starts gateway processes for one test and kills whatever is still running at its end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[GatewayProcess] = []

    def create(self, name: str, config: Path, **env: str) -> GatewayProcess:
        """A gateway process (not started yet) with ``env`` on top of the test's environment."""
        gateway = GatewayProcess(name, config, dict(env), self.log_dir)
        self.started.append(gateway)
        return gateway

    async def start(self, name: str, config: Path, **env: str) -> GatewayProcess:
        """Create a gateway process and wait until it is ready."""
        gateway = self.create(name, config, **env)
        await gateway.start()
        return gateway

    async def start_many(self, *gateways: GatewayProcess) -> None:
        """Start several at once (they share the database: migrations race, on purpose)."""
        await asyncio.gather(*(g.start() for g in gateways))

    async def close(self) -> None:
        """Stop every gateway this test started (SIGTERM, then SIGKILL)."""
        await asyncio.gather(*(g.stop() for g in self.started))


# --- a private Redis ---------------------------------------------------------------------------


class RedisServer:
    """A ``redis-server`` of our own on a fixed port: no persistence, so a restart is empty."""

    def __init__(self, log_dir: Path, port: int | None = None) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed; the reliability tests need it")
        self.exe, self.log_dir = exe, log_dir
        self.port = port or devctl.free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = log_dir / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, timeout: float = 10.0) -> None:
        """Start (again, on the same port) and wait until it answers PING."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                self.exe,
                *redis_server_args(self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        async def answers() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"redis-server exited; log:\n{_tail(self.log_path)}")
            client = aioredis.Redis.from_url(self.url, socket_connect_timeout=1)
            try:
                return bool(await client.ping())
            except (aioredis.RedisError, OSError):
                return False
            finally:
                await client.aclose()

        await wait_until(answers, timeout, f"redis-server on port {self.port}")

    async def kill(self) -> None:
        """``kill -9``: whatever it held is gone (it keeps nothing on disk)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()


# --- Rasa stand-ins ----------------------------------------------------------------------------


class StubRasa:
    """Rasa's REST webhook and tracker endpoints, answering ``echo: <text>`` to every message.

    It has no gateway channel, like a stock Rasa, so the gateways under test use the REST
    channel and read the tracker for NLU (their fallback).

    A message containing ``human`` gets the intent ``request_human`` in the tracker, which the
    gateway's policy turns into a handoff. ``received`` records every message in arrival order.
    """

    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []  # (conversation id, text)
        self._latest: dict[str, str] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    def texts_for(self, conversation_id: str) -> list[str]:
        """The texts this conversation sent to the bot, in the order they arrived."""
        return [text for sender, text in self.received if sender == conversation_id]

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        sender, text = str(body["sender"]), str(body["message"])
        self.received.append((sender, text))
        self._latest[sender] = text
        return web.json_response([{"recipient_id": sender, "text": f"echo: {text}"}])

    async def _tracker(self, request: web.Request) -> web.Response:
        sender = request.match_info["sender"]
        text = self._latest.get(sender, "")
        intent = "request_human" if "human" in text.lower() else "echo"
        return web.json_response(
            {
                "sender_id": sender,
                "slots": {},
                "latest_message": {"text": text, "intent": {"name": intent, "confidence": 0.99}},
                "events": [],
            }
        )

    async def _events(self, request: web.Request) -> web.Response:
        return web.json_response({"sender_id": request.match_info["sender"]})

    async def start(self) -> StubRasa:
        """Listen on a free port (``url``)."""
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", self._webhook)
        app.router.add_get("/conversations/{sender}/tracker", self._tracker)
        app.router.add_post("/conversations/{sender}/tracker/events", self._events)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()


class RasaSwitch:
    """A proxy in front of the real Rasa that can be stopped like a process: while stopped its
    port refuses connections (and open keep-alive connections are closed)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = 0  # the kernel picks it on the first start(); restarts keep it
        self.url = ""
        self.forwarded: list[str] = []  # webhook texts that reached the real Rasa
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        body = await request.read()
        if request.path.startswith("/webhooks/"):  # the gateway channel, or the REST one
            self.forwarded.append(str((await request.json()).get("message")))
        async with self._http.request(
            request.method,
            f"{self.upstream}{request.path_qs}",
            data=body,
            headers={"Content-Type": "application/json"},
        ) as upstream:
            return web.Response(
                status=upstream.status, body=await upstream.read(), content_type="application/json"
            )

    async def start(self) -> None:
        """Listen (again) on the same port."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self.port = await listen(self._runner, self.port, reuse_address=True)
        self.url = f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop listening and close every connection, as if Rasa's process had stopped."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        """Stop, and close the client session to the real Rasa."""
        await self.stop()
        if self._http is not None:
            await self._http.close()


# --- the database ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """A throwaway PostgreSQL database (``csbot_rel_<random>``) of one test."""

    url: str

    @contextlib.asynccontextmanager
    async def store(self, migrate: bool = False) -> AsyncIterator[Store]:
        """A Store on it; ``migrate`` first when no gateway has created the schema yet."""
        store = await Store.connect(self.url)
        try:
            if migrate:
                await store.migrate()
            yield store
        finally:
            await store.close()

    async def messages(self, conversation_id: str) -> list[StoredMessage]:
        """A conversation's stored messages, by seq."""
        async with self.store() as store:
            return await store.messages(conversation_id)

    async def add_agent(self, username: str, display_name: str) -> int:
        """An agent (role agent) with the tests' password; returns the agent's id."""
        async with self.store(migrate=True) as store:
            agent = await store.add_agent(username, display_name, hash_password(AGENT_PASSWORD))
            return agent.id


def assert_gap_free(messages: Sequence[StoredMessage]) -> None:
    """Seqs of a conversation are exactly 1..n."""
    seqs = [m.seq for m in messages]
    assert seqs == list(range(1, len(seqs) + 1)), f"seqs have gaps or repeats: {seqs}"


def inbound(messages: Sequence[StoredMessage]) -> list[StoredMessage]:
    """The customer's messages."""
    return [m for m in messages if m.direction is Direction.INBOUND]


def outbound(messages: Sequence[StoredMessage], sender: str | None = None) -> list[StoredMessage]:
    """Messages to the customer (from ``sender``: bot, agent or system, if given)."""
    return [
        m
        for m in messages
        if m.direction is Direction.OUTBOUND and (sender is None or m.sender_kind.value == sender)
    ]


# --- the customer: widget.js semantics ----------------------------------------------------------


@dataclass
class Outgoing:
    """A message the customer typed, until the server acknowledges it."""

    client_id: str
    text: str
    payload: str | None = None

    def frame(self) -> Frame:
        """The websocket frame that sends it."""
        frame: Frame = {"type": "message", "client_id": self.client_id, "text": self.text}
        if self.payload is not None:
            frame["payload"] = self.payload
        return frame


@dataclass
class WidgetStats:
    """What the widget went through, for assertions and the test's report."""

    connects: int = 0
    redelivered: int = 0  # message frames for a seq already shown (dropped, as widget.js does)
    resent: int = 0  # messages sent right after a (re)connect: unacked, or typed meanwhile
    gap_syncs: int = 0  # syncs sent because a message frame skipped a seq
    anomalies: list[str] = field(default_factory=list)  # acks or frames that contradict earlier


class WidgetClient:
    """A customer's chat widget that survives gateway restarts like ``widget.js`` does.

    It keeps every sent message until its ``ack``; after each (re)connect it first sends
    ``sync {after_seq: highest seq shown}``, then resends the unacknowledged messages with
    their original ``client_id``. A message frame that skips a seq triggers another sync.
    Message frames are rendered by seq, each seq once.
    """

    def __init__(
        self,
        base_url: str,
        http: aiohttp.ClientSession,
        token: str | None = None,
        user: dict[str, str] | None = None,
    ) -> None:
        self.base_url, self.http = base_url, http
        self.token = token
        self.user = user  # the shop vouches for a signed-in customer (gateway_fixtures.shop_user)
        self.conversation_id: str | None = None
        self.unacked: dict[str, Outgoing] = {}
        self.sent: list[Outgoing] = []  # everything typed, in order
        self.acked: dict[str, int] = {}  # client_id -> seq
        self.rendered: dict[int, Frame] = {}  # seq -> message frame (or acked local bubble)
        self.frames: list[Frame] = []  # every frame, as received
        self.errors: list[Frame] = []
        self.stats = WidgetStats()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._sent_on_socket: set[str] = set()
        self._lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None

    # --- lifecycle

    async def start(self, timeout: float = 15.0) -> WidgetClient:
        """Connect (and keep reconnecting until closed); returns once the first socket is up."""
        self._runner = asyncio.create_task(self._run())
        await asyncio.wait_for(self._connected.wait(), timeout)
        return self

    async def close(self) -> None:
        """Close the socket and stop reconnecting."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)

    async def _run(self) -> None:
        delay = 0.1
        while not self._closing:
            try:
                await self._connect_once()
                delay = 0.1
            except (aiohttp.ClientError, OSError, TimeoutError, AssertionError):
                pass  # the gateway is down or restarting: try again
            except Exception as exc:
                self.stats.anomalies.append(f"widget failed: {exc!r}")
            finally:
                self._connected.clear()
                self._ws = None
            if self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _connect_once(self) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        body: dict[str, Any] = {"token": self.token}
        if self.user is not None:
            body["user"] = self.user
        async with self.http.post(
            f"{self.base_url}/webchat/session", json=body, timeout=timeout
        ) as resp:
            if resp.status != 200:
                raise AssertionError(f"session refused: {resp.status} {await resp.text()}")
            body = await resp.json()
        if self.conversation_id not in (None, body["conversation_id"]):
            self.stats.anomalies.append(
                f"conversation changed {self.conversation_id} -> {body['conversation_id']}"
            )
        self.token, self.conversation_id = body["token"], body["conversation_id"]
        ws_url = self.base_url.replace("http", "ws", 1) + "/webchat/ws"
        ws = await self.http.ws_connect(ws_url, params={"token": self.token})
        try:
            async with self._lock:
                self._ws, self._sent_on_socket = ws, set()
                await ws.send_json({"type": "sync", "after_seq": self.max_seq()})
                for outgoing in list(self.unacked.values()):
                    await ws.send_json(outgoing.frame())
                    self._sent_on_socket.add(outgoing.client_id)
                    self.stats.resent += 1
                self.stats.connects += 1
                self._connected.set()
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    frame = msg.json()
                    if self._gap_before(frame):
                        # As widget.js: a seq beyond the next one means an event was lost on
                        # the way; ask for everything after what we have.
                        self.stats.gap_syncs += 1
                        await ws.send_json({"type": "sync", "after_seq": self.max_seq()})
                    self._on_frame(frame)
        finally:
            await ws.close()

    # --- frames

    def _gap_before(self, frame: Frame) -> bool:
        if frame.get("type") != "message" or not isinstance(frame.get("seq"), int):
            return False
        highest = self.max_seq()
        return highest > 0 and frame["seq"] > highest + 1

    def _on_frame(self, frame: Frame) -> None:
        frame["_at"] = time.monotonic()
        self.frames.append(frame)
        kind = frame.get("type")
        if kind == "ack":
            client_id, seq = frame["client_id"], frame["seq"]
            if client_id in self.acked and self.acked[client_id] != seq:
                self.stats.anomalies.append(
                    f"{client_id} acked as seq {self.acked[client_id]} and as {seq}"
                )
            self.acked.setdefault(client_id, seq)
            outgoing = self.unacked.pop(client_id, None)
            if outgoing is not None and seq not in self.rendered:
                # As widget.js: the local bubble becomes the acked message with this seq.
                self.rendered[seq] = {
                    "type": "message",
                    "seq": seq,
                    "sender": "customer",
                    "text": outgoing.text,
                    "client_id": client_id,
                    "local": True,
                }
        elif kind == "message":
            seq = frame["seq"]
            known = self.rendered.get(seq)
            if known is None:
                self.rendered[seq] = frame
            else:
                self.stats.redelivered += 1
                if (known["text"], known["sender"]) != (frame["text"], frame["sender"]):
                    self.stats.anomalies.append(
                        f"seq {seq} came as {known['text']!r} and as {frame['text']!r}"
                    )
        elif kind == "error":
            self.errors.append(frame)

    def max_seq(self) -> int:
        """The highest seq shown (server messages and acked own bubbles, as widget.js)."""
        return max(self.rendered, default=0)

    # --- typing

    async def send(self, text: str, payload: str | None = None) -> str:
        """Type a message: kept until acked, sent now if connected, else after the reconnect."""
        outgoing = Outgoing(str(uuid.uuid4()), text, payload)
        self.sent.append(outgoing)
        self.unacked[outgoing.client_id] = outgoing
        async with self._lock:
            ws = self._ws
            if ws is not None and not ws.closed and outgoing.client_id not in self._sent_on_socket:
                with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
                    await ws.send_json(outgoing.frame())
                    self._sent_on_socket.add(outgoing.client_id)
        return outgoing.client_id

    # --- reading

    def view(self, sender: str | None = None) -> list[Frame]:
        """Rendered messages in seq order (of one sender kind, if given)."""
        return [
            self.rendered[s]
            for s in sorted(self.rendered)
            if sender is None or self.rendered[s]["sender"] == sender
        ]

    def texts(self, sender: str | None = None) -> list[str]:
        """Texts of the rendered messages in seq order (of one sender kind, if given)."""
        return [f["text"] for f in self.view(sender)]

    async def wait_for_text(self, sender: str, needle: str, timeout: float = 20.0) -> Frame:
        """The first rendered message of ``sender`` whose text contains ``needle``."""
        found: list[Frame] = []

        def check() -> bool:
            found[:] = [f for f in self.view(sender) if needle in f["text"]]
            return bool(found)

        await wait_until(
            check,
            timeout,
            f"a {sender} message with {needle!r}",
            describe=lambda: f"rendered: {[(f['sender'], f['text'][:60]) for f in self.view()]}",
        )
        return found[0]

    async def wait_all_acked(self, timeout: float = 20.0) -> None:
        """Wait until no typed message waits for its ack."""
        await wait_until(
            lambda: not self.unacked,
            timeout,
            "every message to be acknowledged",
            describe=lambda: f"unacked: {[o.text for o in self.unacked.values()]}",
        )


# --- the agent: console.js semantics ------------------------------------------------------------


class ConsoleClient(AgentClient):
    """An agent's console page: live events, reconnects, and refreshes like ``console.js``.

    ``known`` holds what the agent's page shows of each watched conversation (seq -> text):
    live ``message`` events plus the API's copy fetched when the page opens, after every
    reconnect of the live socket and on every ``conversation`` (state) event.
    """

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.known: dict[str, dict[int, str]] = {}
        self.live: dict[str, dict[int, str]] = {}
        self.opens = 0
        self._follower: asyncio.Task[None] | None = None
        self._closing = False

    async def follow(self) -> None:
        """Open the live socket (and keep it open) and wait for its first frame."""
        self._follower = asyncio.create_task(self._follow())
        await wait_until(lambda: self.opens > 0, 15, f"console socket on {self.base_url}")

    async def _follow(self) -> None:
        while not self._closing:
            try:
                ws = await self.http.ws_connect(
                    self.base_url.replace("http", "ws", 1) + "/console/ws"
                )
                self.ws = ws
                first = True
                async for msg in ws:
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    event = msg.json()
                    event["_at"] = time.monotonic()
                    self.log.items.append(event)
                    if first:
                        first = False
                        self.opens += 1
                        if self.opens > 1:
                            await self._refresh_all()
                    await self._on_event(event)
            except (aiohttp.ClientError, OSError):
                pass
            if not self._closing:
                await asyncio.sleep(0.3)

    async def _on_event(self, event: Frame) -> None:
        cid = str(event.get("conversation_id"))
        if cid not in self.known:
            return
        if event.get("type") == "message":
            message = event["message"]
            self.known[cid][message["seq"]] = message["text"]
            self.live[cid][message["seq"]] = message["text"]
        elif event.get("type") == "conversation":
            await self.refresh(cid)

    async def watch(self, conversation_id: str) -> None:
        """Open the conversation's page: load it, then follow its live events."""
        self.known.setdefault(conversation_id, {})
        self.live.setdefault(conversation_id, {})
        await self.refresh(conversation_id)

    async def refresh(self, conversation_id: str) -> None:
        """Load the conversation from the API, as the page does."""
        with contextlib.suppress(aiohttp.ClientError):
            status, view = await self.api("GET", f"/conversations/{conversation_id}")
            if status == 200:
                for message in view["messages"]:
                    self.known[conversation_id][message["seq"]] = message["text"]

    async def _refresh_all(self) -> None:
        for cid in list(self.known):
            await self.refresh(cid)

    def shows(self, conversation_id: str, needle: str) -> bool:
        """Whether the agent's page of the conversation shows a message containing ``needle``."""
        return any(needle in text for text in self.known.get(conversation_id, {}).values())

    async def close(self) -> None:
        """Close the live socket and the HTTP session."""
        self._closing = True
        if self.ws is not None:
            await self.ws.close()
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
        await self.http.close()


async def logged_in(base_url: str, username: str) -> ConsoleClient:
    """A console of ``username`` (password AGENT_PASSWORD), logged in through the login form."""
    client = ConsoleClient(base_url)
    await client.login(username, AGENT_PASSWORD)
    return client


def order_numbers(texts: Sequence[str]) -> list[str]:
    """The first 4-digit order number of each text that has one."""
    found = (re.search(r"\b(1\d{3})\b", t) for t in texts)
    return [m.group(1) for m in found if m]
