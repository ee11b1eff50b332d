"""The gateway's aiohttp app factory: resources opened and closed in cleanup_ctx."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog
from aiohttp import web

from bot.appkeys import (
    BROKER,
    CONNECTORS,
    CONSOLE_CONTEXT,
    DESK,
    ENGINE,
    SERVICE,
    SETTINGS,
    STORE,
    WEBCHAT,
)
from bot.broker import create_broker
from bot.config import Settings
from bot.core.clock import utcnow
from bot.core.errors import DuplicateAgent, NotFound
from bot.filestore import StorageUnavailable
from bot.http_errors import json_error
from bot.http_headers import security_headers
from bot.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from bot.rasa_client import RasaClient
from bot.store import Store
from bot.wiring import build_engine
from connectors.registry import build_connectors, channel_summary
from connectors.webchat import WebchatChannel
from handoff.auth import hash_password
from handoff.console import setup_console

log = structlog.get_logger(__name__)

CORS_PATHS = ("/webchat/session", "/webchat/files")


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # Everything opened here is closed again, in reverse order, also when start-up fails
    # half-way (a connector with a rejected token, say).
    async with contextlib.AsyncExitStack() as stack:
        store = await Store.connect(settings.database_url)
        stack.push_async_callback(store.close)
        await store.migrate()
        broker = create_broker(settings.redis_url)
        stack.push_async_callback(broker.close)
        http = aiohttp.ClientSession()
        stack.push_async_callback(http.close)
        rasa = RasaClient(
            settings.rasa.urls, settings.rasa.token, http, settings.rasa.timeout_seconds
        )
        app[STORE], app[BROKER] = store, broker
        engine = build_engine(settings, store, broker, rasa)
        service = app[SERVICE] = engine.service
        app[DESK], app[ENGINE] = engine.desk, engine
        stack.push_async_callback(service.drain)
        await _ensure_demo_agent(settings, store)
        app[CONSOLE_CONTEXT].start(engine.desk, functools.partial(_health_details, app))
        await app[WEBCHAT].start(service.intake)
        for connector in app[CONNECTORS]:
            # A sender before it starts: a reply to its first update must find the outbox.
            engine.senders[connector.channel] = connector
            await connector.start(service.intake)
            stack.push_async_callback(connector.stop)
        engine.outbox.start()
        # Stopped before the connectors and the store; what is queued waits for the next start.
        stack.push_async_callback(engine.outbox.stop)
        await engine.queue.rebuild()
        service.start_retrying()
        stack.push_async_callback(service.stop_retrying)
        log.info("channels", **channel_summary(settings))
        log.info(
            "gateway ready",
            database=settings.database_url.split("://")[0],
            broker="redis" if settings.redis_url else "in-process",
            rasa=settings.rasa.urls,
        )
        yield


async def _ensure_demo_agent(settings: Settings, store: Store) -> None:
    demo = settings.demo_agent
    if demo is None or not demo.password:
        log.info("no demo agent (set DEMO_AGENT_PASSWORD to have one)")
        return
    accounts = [
        (demo.username, demo.display_name, "supervisor", [t.name for t in settings.queue.teams])
    ]
    if demo.colleagues:
        teams = settings.queue.teams
        targets = {t.escalate_to for t in teams if t.escalate_to}
        front = [t.name for t in teams if t.escalate_to and t.name not in targets]
        experts = [t.escalate_to for t in teams if t.name in front and t.escalate_to][:1]
        accounts += [
            ("alex", "Alex", "agent", front or [settings.queue.default_team]),
            ("kim", "Kim", "agent", experts or [settings.queue.default_team]),
        ]
    for username, name, role, member_of in accounts:
        if await store.agent_by_username(username) is not None:
            continue
        try:
            await store.add_agent(
                username, name, hash_password(demo.password), role=role, teams=member_of
            )
        except DuplicateAgent:
            continue  # another replica starting at the same time created it
        log.info("demo account created", username=username, role=role, teams=member_of)


@web.middleware
async def cors_for_widget(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The widget runs on other sites: its session endpoint answers cross-origin (no cookies)."""
    if request.path in CORS_PATHS and request.method == "OPTIONS":
        response: web.StreamResponse = web.Response(status=204)
    else:
        response = await handler(request)
    if request.path in CORS_PATHS:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    return response


@web.middleware
async def body_in_time(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Read a request's body before its handler, within http.body_timeout_seconds: a client
    that trickles a body gets a 408, and one that goes away mid-body is a debug line."""
    # (After this, ``can_read_body`` is False: handlers test ``body_exists``.) Multipart bodies
    # are left to their handler: aiohttp parses those from the stream, not from a buffer.
    if request.can_read_body and not request.content_type.startswith("multipart/"):
        try:
            async with asyncio.timeout(request.app[SETTINGS].http.body_timeout_seconds):
                await request.read()  # kept by the request: handlers read it from memory
        except TimeoutError:
            log.info("request body too slow", path=request.path)
            return json_error(408, "request_timeout", "The request body did not arrive in time.")
        except (ConnectionError, aiohttp.ClientPayloadError) as exc:
            log.debug("request body aborted", path=request.path, error=type(exc).__name__)
            return json_error(400, "bad_request", "The request body was cut off.")
    return await handler(request)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus' scrape: this replica's counters, for the bearer of ``metrics.token``."""
    token = request.app[SETTINGS].metrics.token
    if not token:
        return json_error(404, "not_found", "Metrics are off: set METRICS_TOKEN to turn them on.")
    supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(supplied.encode(), token.encode()):
        response = json_error(401, "unauthenticated", "Send 'Authorization: Bearer <token>'.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    engine = request.app[ENGINE]
    engine.metrics.set_live(await request.app[DESK].dashboard.live_by_team(utcnow()))
    engine.metrics.outbox_backlog.set(await request.app[STORE].outbox_backlog())
    engine.metrics.set_sockets(
        len(request.app[WEBCHAT].sockets), len(request.app[CONSOLE_CONTEXT].sockets)
    )
    body = engine.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


# A stored file is only ever shown or downloaded: never run as a page, never framed, never
# sniffed into another type (bot/core/files.py decided its type from its bytes).
FILE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    # The widget shows pictures on the shop's own pages.
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Cache-Control": "private, max-age=86400, immutable",
}


async def stored_file(request: web.Request) -> web.Response:
    """``GET /files/{id}/{name}``: an uploaded picture (inline) or file (a download).

    The id is 128 random bits, handed only to the conversation's customer and the agents: the
    address is the permission, like a shared link (docs/security.md)."""
    try:
        record, data = await request.app[ENGINE].files.read(request.match_info["file_id"])
    except NotFound:
        return json_error(404, "not_found", "No such file (the link may be wrong or old).")
    except StorageUnavailable:
        log.warning("file storage unavailable on a download")
        return json_error(503, "unavailable", "The file can't be fetched just now; try again.")
    inline = record.content_type.startswith("image/")
    disposition = "inline" if inline else "attachment"
    content_type = record.content_type
    if content_type == "text/plain":
        content_type += "; charset=utf-8"
    headers = {
        **FILE_HEADERS,
        "Content-Type": content_type,
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(record.name, safe='')}",
    }
    return web.Response(body=data, headers=headers)


async def healthz(request: web.Request) -> web.Response:
    """Public and minimal: up or degraded. The details are for supervisors (console API)."""
    ok = await request.app[BROKER].ping()
    return web.json_response({"status": "ok" if ok else "degraded"}, status=200 if ok else 503)


async def _health_details(app: web.Application) -> dict[str, Any]:
    broker_ok = await app[BROKER].ping()
    return {
        "status": "ok" if broker_ok else "degraded",
        "broker": broker_ok,
        "channels": channel_summary(app[SETTINGS]),
    }


def server_options(settings: Settings) -> dict[str, Any]:
    """Options for the server that runs the app (``web.run_app``, ``web.AppRunner``)."""
    # aiohttp closes a connection that sits this long without a whole request, from the moment
    # it opens: a client that trickles its headers is cut off (there is no separate setting).
    return {"keepalive_timeout": settings.http.idle_timeout_seconds}


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[body_in_time, cors_for_widget], client_max_size=256 * 1024)
    app.on_response_prepare.append(security_headers)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/files/{file_id}/{name}", stored_file)
    # Answered by the middleware:
    app.router.add_route("OPTIONS", "/webchat/session", healthz)
    app.router.add_route("OPTIONS", "/webchat/files", healthz)
    webchat = app[WEBCHAT] = WebchatChannel(settings)
    webchat.add_routes(app)
    app[CONSOLE_CONTEXT] = setup_console(app, settings)
    app[CONNECTORS] = build_connectors(settings, app)
    return app
