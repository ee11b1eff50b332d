"""The console's live websocket: the queue snapshot, then every console event, plus presence."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from aiohttp import WSMsgType, web

from bot.broker import BrokerError, Subscription
from bot.core.frames import console_queue_frame
from bot.http_errors import json_error
from handoff.auth import (
    Session,
    unauthenticated_response,
)
from handoff.console.context import CONSOLE, PRESENCE_INTERVAL_SECONDS, PRESENCE_TTL_SECONDS
from handoff.console.http import authenticate, console_ctx, dumps, same_origin
from handoff.desk import AgentDesk

log = logging.getLogger("handoff.console")


# --- WebSocket -------------------------------------------------------------------------------


async def _forward(subscription: Subscription, ws: web.WebSocketResponse) -> None:
    """Copy broker events to the socket; when the subscription ends, close the socket so the
    browser reconnects (and gets a fresh queue snapshot)."""
    try:
        async for event in subscription:
            if ws.closed or event.get("type") == "resync":
                break  # the console reconnects and refreshes
            await ws.send_str(dumps(event))
    except ConnectionResetError:  # the socket went away mid-send
        pass
    except BrokerError as exc:
        log.warning("console websocket: event stream failed: %s", exc)
    except Exception:
        log.exception("console websocket: event forwarding failed")
    finally:
        if not ws.closed:
            await ws.close(code=1011, message=b"event stream ended")


async def _keep_alive(
    desk: AgentDesk, ws: web.WebSocketResponse, member: str, session: Session
) -> None:
    """Presence heartbeat every 10 s; closes the socket when the session expires or was ended
    on the server (logout, a new password: the agent's session version moved on)."""
    while not ws.closed:
        if time.time() >= session.expires_at:
            await ws.close(code=4401, message=b"session expired")
            return
        try:
            agent = await desk.agent(session.agent_id)
        except Exception as exc:  # the store is briefly unreachable: check again next round
            log.warning("console websocket: session check failed: %s", type(exc).__name__)
        else:
            if agent is None or agent.session_version != session.version:
                await ws.close(code=4401, message=b"session ended")
                return
        try:
            await desk.set_presence(member, PRESENCE_TTL_SECONDS)
        except BrokerError as exc:
            log.warning("console websocket: presence heartbeat failed: %s", exc)
        await asyncio.sleep(PRESENCE_INTERVAL_SECONDS)


async def websocket(request: web.Request) -> web.StreamResponse:
    auth = await authenticate(request)
    if auth is None:
        return unauthenticated_response()
    if not same_origin(request):
        return json_error(
            403, "origin", "WebSocket connections are only accepted from the console."
        )
    agent, session = auth
    ctx = console_ctx(request)
    desk = ctx.desk
    member = f"agent:{agent.id}"
    ws = web.WebSocketResponse(heartbeat=25.0, max_msg_size=64 * 1024)
    await ws.prepare(request)
    ctx.sockets.add(ws)
    ctx.presence[member] = ctx.presence.get(member, 0) + 1
    subscription: Subscription | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        # Subscribe before taking the snapshot, so no event falls between the two.
        subscription = await desk.subscribe_console()
        snapshot = await console_ctx(request).desk.queue_snapshot()
        await ws.send_str(dumps(console_queue_frame(snapshot)))
        tasks.append(asyncio.create_task(_forward(subscription, ws)))
        tasks.append(asyncio.create_task(_keep_alive(desk, ws, member, session)))
        if ctx.presence[member] == 1:
            # Present again: a push team may have conversations waiting for their room.
            await desk.set_presence(member, PRESENCE_TTL_SECONDS)
            await desk.console_opened(agent)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await _client_message(ws, msg.data)
    except BrokerError as exc:
        log.warning("console websocket: broker unavailable: %s", exc)
        if not ws.closed:
            await ws.close(code=1011, message=b"broker unavailable")
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if subscription is not None:
            with contextlib.suppress(BrokerError):
                await subscription.close()
        ctx.sockets.discard(ws)
        ctx.presence[member] -= 1
        if ctx.presence[member] <= 0:
            del ctx.presence[member]
            # The agent's last console on this replica closed: they count as away once
            # ``queue.away_after_seconds`` pass without a console (a reload is no absence;
            # another replica's heartbeat keeps them present).
            with contextlib.suppress(BrokerError):
                await desk.set_presence(member, ctx.settings.queue.away_after_seconds)
    return ws


async def _client_message(ws: web.WebSocketResponse, raw: str) -> None:
    """Messages from the browser: {"type": "ping"} and {"type": "watch", ...} (informational:
    every console socket receives every console event)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return
    if isinstance(data, dict) and data.get("type") == "ping":
        await ws.send_str(dumps({"type": "pong"}))


async def close_sockets(app: web.Application) -> None:
    for ws in list(app[CONSOLE].sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=1001, message=b"server shutdown")
