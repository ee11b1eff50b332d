"""P4: memory per idle widget websocket, with ``sockets`` sessions + sockets on one gateway.

RSS of the gateway process (VmRSS) is read after start-up and a small warm-up, again after
all visitor sessions are created (``POST /webchat/session``), and again after every session's
websocket is open and has had its ``sync`` answered. The figure is (after - before) / sockets;
the split between sessions and sockets is in the details. Client sockets come from ten
loopback source addresses (127.0.0.2-11) so that ephemeral ports are never short.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.clients import create_session, ws_url
from bench.procs import Children, CpuMeter, raise_nofile_limit
from bench.services import start_gateway, stop_gateway

SOURCE_ADDRESSES = [f"127.0.0.{i}" for i in range(2, 12)]


def _open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def _nofile_limit(pid: int) -> str:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return " ".join(line.split()[3:5])
    return "?"


async def _keep_reading(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Drain the socket (this also answers the gateway's heartbeat pings)."""
    async for _ in ws:
        pass


async def _open_socket(
    http: aiohttp.ClientSession, base_url: str, token: str
) -> tuple[aiohttp.ClientWebSocketResponse, asyncio.Task[None]]:
    ws = await http.ws_connect(ws_url(base_url), params={"token": token})
    await ws.send_str('{"type":"sync","after_seq":0}')
    while True:  # the sync is answered with the conversation's state
        msg = await ws.receive(timeout=60)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"socket closed before the sync answer: {msg.type}")
        if json.loads(msg.data).get("type") == "state":
            break
    return ws, asyncio.create_task(_keep_reading(ws))


async def run(
    children: Children,
    run_dir: Path,
    say: Callable[[str], None],
    *,
    sockets: int = 10_000,
    concurrency: int = 24,
) -> dict[str, Any]:
    loadgen_limit = raise_nofile_limit()
    if loadgen_limit < sockets + 500:
        raise RuntimeError(f"the open-files limit is {loadgen_limit}; {sockets} sockets need more")
    # Rasa is never called for idle sockets; a closed port keeps it out of the picture.
    gateway = await start_gateway(children, "gateway-p4", ["http://127.0.0.1:9"], run_dir)
    pid = gateway.child.pid
    opened: list[tuple[aiohttp.ClientWebSocketResponse, asyncio.Task[None]]] = []
    clients = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, local_addr=(addr, 0)))
        for addr in SOURCE_ADDRESSES
    ]
    try:
        # Warm-up: the first sessions and sockets load code and fill caches; not counted.
        warm = [await create_session(clients[0], gateway.url) for _ in range(20)]
        for token, _ in warm:
            opened.append(await _open_socket(clients[0], gateway.url, token))
        await asyncio.sleep(1.0)
        rss_before = gateway.child.rss_kb()

        meter = CpuMeter({"gateway": pid, "loadgen": os.getpid()}).start()
        started = time.perf_counter()
        tokens: list[str] = []
        left = sockets

        async def make_sessions(worker: int) -> None:
            nonlocal left
            http = clients[worker % len(clients)]
            while left > 0:
                left -= 1
                token, _ = await create_session(http, gateway.url)
                tokens.append(token)
                if len(tokens) % 2000 == 0:
                    say(f"P4 {len(tokens)}/{sockets} sessions")

        await asyncio.gather(*(make_sessions(i) for i in range(concurrency)))
        sessions_s = time.perf_counter() - started
        sessions_cpu = meter.stop()
        await asyncio.sleep(1.0)
        rss_sessions = gateway.child.rss_kb()

        meter.start()
        started = time.perf_counter()
        queue = list(enumerate(tokens))

        async def open_sockets() -> None:
            while queue:
                index, token = queue.pop()
                opened.append(await _open_socket(clients[index % len(clients)], gateway.url, token))
                if (len(opened) - len(warm)) % 2000 == 0:
                    say(f"P4 {len(opened) - len(warm)}/{sockets} sockets open")

        await asyncio.gather(*(open_sockets() for _ in range(concurrency)))
        sockets_s = time.perf_counter() - started
        sockets_cpu = meter.stop()
        await asyncio.sleep(2.0)
        rss_after = gateway.child.rss_kb()
        still_open = sum(1 for ws, _ in opened if not ws.closed) - len(warm)
        files = _open_files(pid)
        per_socket = (rss_after - rss_before) / sockets
        say(
            f"P4 RSS {rss_before / 1024:.0f} MiB -> {rss_sessions / 1024:.0f} MiB (sessions) -> "
            f"{rss_after / 1024:.0f} MiB ({sockets} sockets): {per_socket:.1f} KiB per socket"
        )
        return {
            "p4_kb_per_socket": round(per_socket, 2),
            "sockets": sockets,
            "sockets_open_at_measurement": still_open,
            "rss_kb": {"before": rss_before, "after_sessions": rss_sessions, "after": rss_after},
            "sessions_kb_each": round((rss_sessions - rss_before) / sockets, 2),
            "sockets_kb_each": round((rss_after - rss_sessions) / sockets, 2),
            "gateway_open_files": files,
            "gateway_nofile_limit": _nofile_limit(pid),
            "loadgen_nofile_limit": loadgen_limit,
            "sessions_per_s": round(sockets / sessions_s, 1),
            "sockets_per_s": round(sockets / sockets_s, 1),
            "source_addresses": len(SOURCE_ADDRESSES),
            "gateway_cpu_ms_per_session": round(1000 * sessions_cpu["gateway_cpu_s"] / sockets, 2),
            "gateway_cpu_ms_per_socket": round(1000 * sockets_cpu["gateway_cpu_s"] / sockets, 2),
            "cpu_sessions": sessions_cpu,
            "cpu_sockets": sockets_cpu,
        }
    finally:
        # Stop the gateway first: 10k server-side closes would take a while.
        stop_gateway(children, gateway, grace=2.0)
        for _, reader in opened:
            reader.cancel()
        for http in clients:
            await http.close()
