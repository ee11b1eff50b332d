"""P2: gateway capacity with a stub bot vs a bare relay vs a websocket echo (the ceiling).

Every arm is driven by the same closed-loop customers over the widget's websocket: send a
message, wait for the bot's answer frame, repeat; a customer's conversation is
``MESSAGES_PER_CONVERSATION`` messages long, then the next customer (a new session and socket)
takes its place. The gateway persists, dedupes, orders and routes every message; the relay
only forwards it to the same stub; the echo server only sends the frame back. Arms alternate
in rounds so that noise on the shared machine hits all of them alike.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.clients import (
    Frame,
    SessionPool,
    is_any_message,
    is_bot_message,
    open_widget,
    send_message,
    wait_frames,
)
from bench.load import Sample, Window, combine, run_window
from bench.procs import Child, Children
from bench.services import Gateway, start_gateway, start_reference, start_stub, stop_gateway
from bench.stats import ratio

MESSAGES_PER_CONVERSATION = 10
TEXTS = [
    "hi",
    "where is my order 1001?",
    "my speaker is too quiet",
    "my wifi keeps dropping",
    "thanks",
    "what are your opening hours?",
    "has my refund for order 1005 been processed?",
    "bye",
]


def widget_customer(
    http: aiohttp.ClientSession,
    url: str,
    pool: SessionPool | None,
    answered: Callable[[Frame], bool],
) -> Callable[[asyncio.Event, list[Sample]], Any]:
    """A customer loop: one conversation of MESSAGES_PER_CONVERSATION turns per iteration."""
    texts = itertools.cycle(TEXTS)

    async def customer(stop: asyncio.Event, samples: list[Sample]) -> None:
        token = await pool.take() if pool is not None else None
        ws = await open_widget(http, url, token)
        try:
            for _ in range(MESSAGES_PER_CONVERSATION):
                if stop.is_set():
                    return
                started = time.perf_counter()
                await send_message(ws, next(texts))
                ok = await wait_frames(ws, answered, 1, timeout=15.0)
                samples.append(Sample(started, time.perf_counter(), ok=ok))
                if not ok:
                    return
        finally:
            await ws.close()

    return customer


async def run(
    children: Children,
    run_dir: Path,
    say: Callable[[str], None],
    *,
    customers: int = 32,
    window: float = 7.0,
    rounds: int = 2,
    ramp: float = 1.0,
) -> dict[str, Any]:
    started: list[Child] = []
    gateway: Gateway | None = None
    try:
        stub, stub_url = await start_stub(children, "stub-p2")
        started.append(stub)
        gateway = await start_gateway(children, "gateway-p2", [stub_url], run_dir)
        relay, relay_url = await start_reference(children, "relay", stub_url)
        started.append(relay)
        echo, echo_url = await start_reference(children, "echo")
        started.append(echo)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            pool = SessionPool(http, gateway.url)
            arms = {
                "gateway": (gateway.url, pool, is_bot_message, gateway.child.pid),
                "relay": (relay_url, None, is_bot_message, relay.pid),
                "echo": (echo_url, None, is_any_message, echo.pid),
            }

            async def window_for(arm: str, seconds: float) -> Window:
                url, sessions, answered, pid = arms[arm]
                return await run_window(
                    arm,
                    widget_customer(http, url, sessions, answered),
                    customers,
                    seconds,
                    ramp,
                    cpu_pids={"server": pid, "stub": stub.pid, "loadgen": os.getpid()},
                )

            say(f"P2 warm-up (customers={customers})")
            await pool.fill(customers * 2)
            warm = {arm: await window_for(arm, 2.0) for arm in arms}
            needed = int(warm["gateway"].rate * window * rounds / MESSAGES_PER_CONVERSATION * 1.5)
            session_rate = await pool.fill(needed + customers * (rounds + 1))
            say(f"P2 {len(pool)} sessions ready ({session_rate:.0f} sessions/s)")
            windows: dict[str, list[Window]] = {arm: [] for arm in arms}
            for index in range(rounds):
                for arm in arms:
                    result = await window_for(arm, window)
                    windows[arm].append(result)
                    say(
                        f"P2 round {index + 1}/{rounds} {arm:8s} {result.rate:8.1f} msg/s "
                        f"p50 {1000 * _p50(result):.1f} ms, machine busy "
                        f"{100 * result.cpu.get('machine_busy', 0):.0f}%"
                    )
            combined = {arm: combine(ws) for arm, ws in windows.items()}
    finally:
        if gateway is not None:
            stop_gateway(children, gateway)
        for child in reversed(started):
            children.stop(child)
    rates = {arm: combined[arm]["rate_per_s"] for arm in arms}
    return {
        "p2_capacity_ratio": ratio(rates["gateway"], rates["relay"]),
        "gateway_vs_echo": ratio(rates["gateway"], rates["echo"]),
        "relay_vs_echo": ratio(rates["relay"], rates["echo"]),
        "arms": combined,
        "warmup_rate_per_s": {arm: round(w.rate, 1) for arm, w in warm.items()},
        "customers": customers,
        "messages_per_conversation": MESSAGES_PER_CONVERSATION,
        "window_s": window,
        "rounds": rounds,
        "sessions_created_per_s": round(session_rate, 1),
        "sessions_created_in_windows": pool.created_on_demand,
        "latency_samples_s": {
            arm: [round(x, 6) for w in ws for x in w.latencies()] for arm, ws in windows.items()
        },
    }


def _p50(window: Window) -> float:
    values = sorted(window.latencies())
    return values[len(values) // 2] if values else float("nan")
