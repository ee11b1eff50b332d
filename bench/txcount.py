"""Evidence for docs/performance.md: ``python -m bench.txcount`` (about 30 s).

1. How many Store transactions (``bot/store.py`` public methods) one gateway operation makes:
   a visitor session, a socket + sync, a bot turn, a handoff and a claim with ``n``
   conversations in the console's queue view, a customer message to a person, an agent reply.
   The gateway runs in this process (``bot.app.create_app``) against the stub bot, with
   counting wrappers around the Store's methods; nothing in bot/ is changed.
2. What one small read transaction costs: ``Store.conversation()`` through SQLAlchemy's async
   engine and aiosqlite (several thread round trips per transaction), against the same query
   on a synchronous engine run in one ``asyncio.to_thread`` hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web

from bench.clients import (
    AgentConsole,
    create_session,
    is_bot_message,
    open_widget,
    send_message,
    wait_frames,
)
from bench.procs import Children
from bench.services import start_stub
from bot import store as store_module
from bot.app import create_app
from bot.appkeys import SERVICE
from bot.config import Settings
from scripts import devctl

CALLS: Counter[str] = Counter()
PASSWORD = "txcount-password"


def _count_store_calls() -> None:
    """Wrap every public coroutine method of Store with a counter (idempotent)."""
    cls = store_module.Store
    for name, method in inspect.getmembers(cls, inspect.iscoroutinefunction):
        if name.startswith("_") or name in ("connect", "migrate", "close"):
            continue
        if getattr(method, "_counted", False):
            continue

        def make(method: Callable[..., Awaitable[Any]], name: str) -> Callable[..., Any]:
            @functools.wraps(method)
            async def counted(*args: Any, **kwargs: Any) -> Any:
                CALLS[name] += 1
                return await method(*args, **kwargs)

            counted._counted = True  # type: ignore[attr-defined]
            return counted

        setattr(cls, name, make(method, name))


def _take() -> dict[str, int]:
    calls = dict(CALLS)
    CALLS.clear()
    return calls


@contextlib.asynccontextmanager
async def _gateway(tmp: Path, rasa_url: str) -> AsyncIterator[tuple[str, web.Application]]:
    settings = Settings.model_validate(
        {
            "database_url": f"sqlite:///{tmp / 'gateway.sqlite3'}",
            "secret_key": "txcount-secret-key-0123456789",
            "rasa": {"urls": [rasa_url], "token": "stub"},
            "demo_agent": {"username": "demo", "password": PASSWORD, "display_name": "Sam"},
        }
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    port = devctl.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        await runner.cleanup()


async def _state(ws: aiohttp.ClientWebSocketResponse, state: str) -> None:
    while True:
        msg = await ws.receive(timeout=30)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"socket closed while waiting for {state}")
        frame = json.loads(msg.data)
        if frame.get("type") == "state" and frame.get("state") == state:
            return


def _line(what: str, calls: dict[str, int]) -> str:
    detail = ", ".join(f"{k} {v}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1]))
    return f"  {what:44s} {sum(calls.values()):4d}   ({detail})"


async def count_transactions(conversations: int = 40) -> list[str]:
    _count_store_calls()
    out = ["Store transactions per gateway operation (stub bot):"]
    children = Children(Path(tempfile.mkdtemp(prefix="txcount-")))
    _, stub_url = await start_stub(children, "stub-txcount")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with _gateway(Path(tmp), stub_url) as (url, app), aiohttp.ClientSession() as http:
                service = app[SERVICE]
                settle = 0.3

                async def quiet() -> None:
                    await asyncio.sleep(settle)
                    await service.drain()

                await quiet()
                _take()
                token, _ = await create_session(http, url)
                out.append(_line("visitor session (POST /webchat/session)", _take()))
                ws = await open_widget(http, url, token)
                await _state(ws, "bot")
                out.append(_line("socket + sync", _take()))
                for _ in range(3):
                    await send_message(ws, "where is my order 1001?")
                    await wait_frames(ws, is_bot_message, 1, 10)
                    await quiet()
                _take()
                await send_message(ws, "where is my order 1001?")
                await wait_frames(ws, is_bot_message, 1, 10)
                await quiet()
                out.append(_line("bot turn (4th message of a conversation)", _take()))

                agent = AgentConsole(url)
                await agent.login("demo", PASSWORD)
                customers = []
                for _ in range(conversations):
                    token, conversation_id = await create_session(http, url)
                    socket = await open_widget(http, url, token)
                    await _state(socket, "bot")
                    customers.append((conversation_id, socket))
                await quiet()
                _take()
                report = {1, conversations // 4, conversations // 2, conversations}
                for n, (conversation_id, socket) in enumerate(customers, start=1):
                    await send_message(socket, "I want a human")
                    await _state(socket, "queued")
                    await quiet()
                    handoff = _take()
                    status, body = await agent.api(
                        "POST", f"/conversations/{conversation_id}/claim"
                    )
                    if status != 200:
                        raise RuntimeError(f"claim: HTTP {status} {body}")
                    await _state(socket, "assigned")
                    await quiet()
                    claim = _take()
                    if n in report:
                        out.append(
                            _line(f"handoff, {n} conversation(s) in the queue view", handoff)
                        )
                        out.append(_line(f"claim, {n} conversation(s) in the queue view", claim))
                conversation_id, socket = customers[0]
                await send_message(socket, "is anyone there?")
                await quiet()
                out.append(_line("customer message to a person", _take()))
                for nth in ("first", "later"):
                    status, _ = await agent.api(
                        "POST", f"/conversations/{conversation_id}/reply", {"text": "Hello!"}
                    )
                    await quiet()
                    out.append(_line(f"agent reply ({nth})", _take()))
                await agent.close()
                for _, socket in customers:
                    await socket.close()
                await ws.close()
    finally:
        children.stop_all()
    out.append("  (background work that falls into a step, e.g. outbox_claim, is counted too)")
    return out


async def transaction_cost(rounds: int = 500) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/cost.sqlite3"
        store = await store_module.Store.connect(url)
        await store.migrate()
        customer = await store.find_or_create_customer("webchat", "visitor", None)
        conversation = await store.create_conversation(customer.id, "webchat", "visitor")
        for _ in range(50):
            await store.conversation(conversation.id)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            await store.conversation(conversation.id)
        async_wall = (time.perf_counter() - wall) / rounds
        async_cpu = (time.process_time() - cpu) / rounds
        await store.close()

        engine = sa.create_engine(f"sqlite:///{tmp}/cost.sqlite3")
        query = sa.select(store_module.conversations).where(
            store_module.conversations.c.id == conversation.id
        )

        def read() -> Any:
            with engine.begin() as connection:
                return connection.execute(query).first()

        for _ in range(50):
            await asyncio.to_thread(read)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            await asyncio.to_thread(read)
        sync_wall = (time.perf_counter() - wall) / rounds
        sync_cpu = (time.process_time() - cpu) / rounds
        engine.dispose()
    return [
        "One small read transaction (Store.conversation), mean of "
        f"{rounds}, this process's CPU (all threads):",
        f"  async engine + aiosqlite (as bot/store.py)  wall {1000 * async_wall:6.3f} ms, "
        f"CPU {1000 * async_cpu:6.3f} ms",
        f"  sync engine, one to_thread per transaction  wall {1000 * sync_wall:6.3f} ms, "
        f"CPU {1000 * sync_cpu:6.3f} ms",
    ]


async def main() -> None:
    for line in await count_transactions():
        print(line, flush=True)
    print()
    for line in await transaction_cost():
        print(line)


if __name__ == "__main__":
    import logging

    logging.disable(logging.INFO)
    asyncio.run(main())
