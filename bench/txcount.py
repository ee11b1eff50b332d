"""Evidence for docs/performance.md: ``python -m bench.txcount`` (about 30 s).

1. How many Store transactions (``bot/store.py`` public methods) one gateway operation makes:
   a visitor session, a socket + sync, a bot turn, a handoff and a claim with ``n``
   conversations in the console's queue view, a customer message to a person, an agent reply.
   The gateway runs in this process (``bot.app.create_app``) against the stub bot, with
   counting wrappers around the Store's methods; nothing in bot/ is changed.
2. What one small read transaction costs, three ways: ``Store.conversation()`` as
   bot/store.py runs it (a synchronous engine on the event loop's thread), the same query on
   a synchronous engine in one ``asyncio.to_thread`` hop, and on SQLAlchemy's async engine
   with aiosqlite (several thread round trips per transaction; how the store ran before).
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
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # port 0: the kernel picks a free one
    port = runner.addresses[0][1]
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


async def _mean_cost(rounds: int, call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Mean wall and CPU seconds (all threads of this process) of ``await call()``."""
    for _ in range(50):
        await call()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        await call()
    return (time.perf_counter() - wall) / rounds, (time.process_time() - cpu) / rounds


async def transaction_cost(rounds: int = 500) -> list[str]:
    from sqlalchemy.ext.asyncio import create_async_engine

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/cost.sqlite3"
        store = await store_module.Store.connect(url)
        await store.migrate()
        customer = await store.find_or_create_customer("webchat", "visitor", None)
        conversation = await store.create_conversation(customer.id, "webchat", "visitor")
        costs = {"store": await _mean_cost(rounds, lambda: store.conversation(conversation.id))}
        await store.close()

        query = sa.select(store_module.schema.conversations).where(
            store_module.schema.conversations.c.id == conversation.id
        )
        engine = sa.create_engine(url)

        def read() -> Any:
            with engine.begin() as connection:
                return connection.execute(query).first()

        costs["thread"] = await _mean_cost(rounds, lambda: asyncio.to_thread(read))
        engine.dispose()

        async_engine = create_async_engine(f"sqlite+aiosqlite:///{tmp}/cost.sqlite3")

        async def read_async() -> Any:
            async with async_engine.begin() as connection:
                return (await connection.execute(query)).first()

        costs["aiosqlite"] = await _mean_cost(rounds, read_async)
        await async_engine.dispose()
    labels = {
        "store": "sync engine on the event loop (bot/store.py)",
        "thread": "sync engine, one to_thread per transaction",
        "aiosqlite": "async engine + aiosqlite (before 2026-11-23)",
    }
    lines = [
        "One small read transaction (Store.conversation), mean of "
        f"{rounds}, this process's CPU (all threads):"
    ]
    for key, label in labels.items():
        wall, cpu = costs[key]
        lines.append(f"  {label:<46} wall {1000 * wall:6.3f} ms, CPU {1000 * cpu:6.3f} ms")
    return lines


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
