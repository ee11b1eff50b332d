"""The agent console: login, live queue, conversation workspace, their JSON and WebSocket API.

Everything lives under ``/console``. Pages are server-rendered shells (Jinja2, autoescaped) that
``static/console.js`` fills from the JSON API and keeps live over ``/console/ws``. Nothing a
customer or agent typed is ever inserted as HTML, and pages forbid inline script through their
Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from aiohttp import WSMsgType, web

from bot.appkeys import BROKER, SERVICE, SETTINGS, STORE
from bot.broker import Broker, BrokerError, Subscription
from bot.service import BadMessage, Conflict, NotFound, note_dict
from bot.state import IllegalTransition
from bot.store import Agent
from bot.store import NotFound as StoreNotFound
from handoff.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    LoginRateLimiter,
    Session,
    SessionCodec,
    burn_password_check,
    check_csrf,
    clear_login_csrf_cookie,
    clear_session_cookie,
    csrf_error_response,
    hash_password,
    needs_rehash,
    new_csrf_token,
    set_login_csrf_cookie,
    set_session_cookie,
    unauthenticated_response,
    verify_password,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
PREFIX = "/console"
STATIC_PREFIX = f"{PREFIX}/static/"
CONSOLE_TOPIC = "console"
PRESENCE_TTL_SECONDS = 30
PRESENCE_INTERVAL_SECONDS = 10.0
WRONG_LOGIN = "Wrong username or password"
MAX_USERNAME_CHARS = 200
MAX_PASSWORD_CHARS = 1024

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ApiHandler = Callable[[web.Request, Agent], Awaitable[Any]]
PageHandler = Callable[[web.Request, Agent, Session], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """A client error the API reports as ``{"error": code, "message": message}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclasses.dataclass
class ConsoleContext:
    """Per-app console state (one per gateway process)."""

    templates: jinja2.Environment
    limiter: LoginRateLimiter
    static_version: str
    sockets: weakref.WeakSet[web.WebSocketResponse] = dataclasses.field(
        default_factory=weakref.WeakSet
    )
    presence: dict[str, int] = dataclasses.field(default_factory=dict)  # member -> open sockets
    _codec: SessionCodec | None = None

    def codec(self, request: web.Request) -> SessionCodec:
        # Built on first use: the settings may be put on the app after setup_console ran.
        if self._codec is None:
            self._codec = SessionCodec(request.config_dict[SETTINGS].secret_key)
        return self._codec


CONSOLE = web.AppKey("csbot_console", ConsoleContext)


# --- JSON ------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _error(status: int, code: str, message: str) -> web.Response:
    return _json({"error": code, "message": message}, status=status)


# --- helpers ---------------------------------------------------------------------------------


def _ctx(request: web.Request) -> ConsoleContext:
    return request.config_dict[CONSOLE]


async def _authenticate(request: web.Request) -> tuple[Agent, Session] | None:
    session = _ctx(request).codec(request).decode(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    agent = await request.config_dict[STORE].agent(session.agent_id)
    if agent is None:  # the account was removed after the cookie was issued
        return None
    return agent, session


def _agent_json(agent: Agent) -> dict[str, Any]:
    teams = agent.teams
    return {
        "id": agent.id,
        "username": agent.username,
        "display_name": agent.display_name,
        "role": getattr(agent.role, "value", agent.role),
        "teams": [teams] if isinstance(teams, str) else list(teams or []),
    }


def _safe_next(target: str | None) -> str:
    """A redirect target inside the console, or /console (no open redirects)."""
    if not target or len(target) > 500:
        return PREFIX
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or target.startswith("//"):
        return PREFIX
    if parts.path != PREFIX and not parts.path.startswith(PREFIX + "/"):
        return PREFIX
    if parts.path.startswith(STATIC_PREFIX) or parts.path.startswith(f"{PREFIX}/api/"):
        return PREFIX
    return target


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


def _login_url(next_path: str | None = None) -> str:
    if next_path and next_path != PREFIX:
        return f"{PREFIX}/login?next={quote(next_path, safe='/')}"
    return f"{PREFIX}/login"


def _render(
    request: web.Request,
    template: str,
    *,
    status: int = 200,
    agent: Agent | None = None,
    csrf_token: str = "",
    **context: Any,
) -> web.Response:
    ctx = _ctx(request)
    html = ctx.templates.get_template(template).render(
        agent=_agent_json(agent) if agent is not None else None,
        csrf_token=csrf_token,
        static=lambda name: f"{STATIC_PREFIX}{ctx.static_version}/{name}",
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers for everything under /console (signal handler, so error pages get them too)."""
    path = request.path
    if path != PREFIX and not path.startswith(PREFIX + "/"):
        return
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    if not path.startswith(STATIC_PREFIX):
        headers.setdefault("Cache-Control", "no-store")
    if response.content_type == "text/html":
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)


def _same_origin(request: web.Request) -> bool:
    """Whether a WebSocket handshake comes from a console page (blocks cross-site hijacking)."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser
        return True
    netloc = urlsplit(origin).netloc.lower()
    allowed = {request.host.lower()}
    public_url = getattr(getattr(request.config_dict[SETTINGS], "http", None), "public_url", None)
    if public_url:
        allowed.add(urlsplit(public_url).netloc.lower())
    return netloc in allowed


# --- decorators ------------------------------------------------------------------------------


def api(handler: ApiHandler) -> Handler:
    """A JSON endpoint: session required (401), CSRF checked for unsafe methods (403), service
    errors mapped to 404/409, the handler's return value sent as JSON."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        auth = await _authenticate(request)
        if auth is None:
            return unauthenticated_response()
        agent, session = auth
        if not await check_csrf(request, session):
            return csrf_error_response()
        try:
            result = await handler(request, agent)
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message)
        except BadMessage as exc:
            return _error(400, exc.code, str(exc))
        except (NotFound, StoreNotFound) as exc:
            return _error(404, "not_found", str(exc) or "No such conversation.")
        except (Conflict, IllegalTransition) as exc:
            return _error(409, "conflict", str(exc) or "That is not possible right now.")
        except BrokerError:
            log.exception("console API: broker unavailable")
            return _error(503, "unavailable", "The server is busy reconnecting. Try again shortly.")
        except web.HTTPException:
            raise
        except Exception:
            log.exception("console API: %s %s failed", request.method, request.path)
            return _error(500, "internal", "Something went wrong on the server. Try again.")
        return _json(result)

    return wrapper


def page(handler: PageHandler) -> Handler:
    """An HTML page for signed-in agents; everyone else goes to the login page."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        auth = await _authenticate(request)
        if auth is None:
            raise web.HTTPFound(_login_url(request.path_qs))
        agent, session = auth
        return await handler(request, agent, session)

    return wrapper


# --- login / logout --------------------------------------------------------------------------


def _login_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    username: str = "",
    next_path: str = PREFIX,
) -> web.Response:
    cookie_value, form_token = _ctx(request).codec(request).login_csrf_pair()
    response = _render(
        request,
        "login.html",
        status=status,
        csrf_token=form_token,
        error=error,
        username=username,
        next_path=next_path,
    )
    set_login_csrf_cookie(response, request, cookie_value)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    next_path = _safe_next(request.query.get("next"))
    if await _authenticate(request) is not None:
        raise web.HTTPFound(next_path)
    return _login_page(request, next_path=next_path)


def _form_str(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def login_submit(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    codec = ctx.codec(request)
    form = await request.post()
    if not codec.check_login_csrf(
        request.cookies.get(LOGIN_CSRF_COOKIE), _form_str(form, "csrf_token")
    ):
        return csrf_error_response()
    username = _form_str(form, "username").strip()
    password = _form_str(form, "password")
    next_path = _safe_next(_form_str(form, "next"))

    if ctx.limiter.is_blocked(username):
        minutes = max(1, round(ctx.limiter.retry_after(username) / 60))
        response = _login_page(
            request,
            status=429,
            error=f"Too many failed sign-in attempts. Try again in {minutes} "
            f"minute{'s' if minutes != 1 else ''}.",
            username=username,
            next_path=next_path,
        )
        response.headers["Retry-After"] = str(ctx.limiter.retry_after(username))
        return response

    agent = None
    if username and len(username) <= MAX_USERNAME_CHARS and len(password) <= MAX_PASSWORD_CHARS:
        agent = await request.config_dict[STORE].agent_by_username(username)
    if agent is not None:
        # argon2 takes tens of milliseconds of CPU: keep the event loop free meanwhile.
        ok = await asyncio.to_thread(verify_password, agent.password_hash, password)
    else:
        await asyncio.to_thread(burn_password_check, password)  # same timing as a wrong password
        ok = False
    if not ok or agent is None:
        ctx.limiter.record_failure(username)
        log.info("console login failed for %r", username[:MAX_USERNAME_CHARS])
        return _login_page(
            request, status=401, error=WRONG_LOGIN, username=username, next_path=next_path
        )

    ctx.limiter.reset(username)
    if needs_rehash(agent.password_hash):
        try:
            new_hash = await asyncio.to_thread(hash_password, password)
            await request.config_dict[STORE].set_agent_password(agent.id, new_hash)
        except Exception:  # an old hash still works; never fail a good login over this
            log.exception("could not upgrade the password hash of agent %s", agent.id)
    response = _redirect(next_path)
    set_session_cookie(
        response, request, codec.encode(agent.id, new_csrf_token()), codec.ttl_seconds
    )
    clear_login_csrf_cookie(response)
    log.info("console login: agent %s (%s)", agent.id, agent.username)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    session = _ctx(request).codec(request).decode(request.cookies.get(SESSION_COOKIE))
    if session is not None and not await check_csrf(request, session):
        return csrf_error_response()
    response = _redirect(f"{PREFIX}/login")
    clear_session_cookie(response)
    return response


# --- pages -----------------------------------------------------------------------------------


@page
async def queue_page(request: web.Request, agent: Agent, session: Session) -> web.StreamResponse:
    return _render(request, "queue.html", agent=agent, csrf_token=session.csrf, page="queue")


@page
async def conversation_page(
    request: web.Request, agent: Agent, session: Session
) -> web.StreamResponse:
    conversation_id = request.match_info["conversation_id"]
    try:
        view = await request.config_dict[SERVICE].conversation_view(conversation_id)
    except NotFound:
        view = None
    return _render(
        request,
        "conversation.html",
        status=200 if view is not None else 404,
        agent=agent,
        csrf_token=session.csrf,
        page="conversation",
        conversation_id=conversation_id,
        initial_view=view,
        max_message_chars=request.config_dict[SETTINGS].limits.max_message_chars,
    )


# --- JSON API --------------------------------------------------------------------------------


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "The request body must be a JSON object.")
    return body


def _text_field(request: web.Request, body: dict[str, Any], what: str) -> str:
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "missing_text", f"The {what} is empty: type some text first.")
    text = text.strip()
    limit: int = request.config_dict[SETTINGS].limits.max_message_chars
    if len(text) > limit:
        raise ApiError(
            400,
            "too_long",
            f"The {what} is too long: {len(text)} characters, the limit is {limit}.",
        )
    return text


def _conversation_id(request: web.Request) -> str:
    return request.match_info["conversation_id"]


@api
async def api_me(request: web.Request, agent: Agent) -> Any:
    return _agent_json(agent)


@api
async def api_queue(request: web.Request, agent: Agent) -> Any:
    return {"items": await request.config_dict[SERVICE].queue_snapshot()}


@api
async def api_agents(request: web.Request, agent: Agent) -> Any:
    store = request.config_dict[STORE]
    online = set(await request.config_dict[BROKER].present())
    agents = await store.agents()
    return [
        {
            "id": a.id,
            "display_name": a.display_name,
            "username": a.username,
            "online": f"agent:{a.id}" in online,
        }
        for a in agents
    ]


@api
async def api_conversation(request: web.Request, agent: Agent) -> Any:
    return await request.config_dict[SERVICE].conversation_view(_conversation_id(request))


@api
async def api_claim(request: web.Request, agent: Agent) -> Any:
    await request.config_dict[SERVICE].claim(_conversation_id(request), agent)
    return {"ok": True}


@api
async def api_reply(request: web.Request, agent: Agent) -> Any:
    text = _text_field(request, await _json_body(request), "reply")
    message = await request.config_dict[SERVICE].agent_reply(_conversation_id(request), agent, text)
    return {"ok": True, "message": message.to_dict()}


@api
async def api_note(request: web.Request, agent: Agent) -> Any:
    text = _text_field(request, await _json_body(request), "note")
    note = await request.config_dict[SERVICE].add_note(_conversation_id(request), agent, text)
    return {"ok": True, "note": note_dict(note)}


@api
async def api_transfer(request: web.Request, agent: Agent) -> Any:
    body = await _json_body(request)
    to_agent_id = body.get("agent_id")
    if type(to_agent_id) is not int:
        raise ApiError(400, "missing_agent", "Choose the agent to transfer the conversation to.")
    if await request.config_dict[STORE].agent(to_agent_id) is None:
        raise ApiError(400, "unknown_agent", f"There is no agent with id {to_agent_id}.")
    await request.config_dict[SERVICE].transfer(_conversation_id(request), agent, to_agent_id)
    return {"ok": True}


@api
async def api_resolve(request: web.Request, agent: Agent) -> Any:
    await request.config_dict[SERVICE].resolve(_conversation_id(request), agent)
    return {"ok": True}


# --- WebSocket -------------------------------------------------------------------------------


async def _forward(subscription: Subscription, ws: web.WebSocketResponse) -> None:
    """Copy broker events to the socket; when the subscription ends, close the socket so the
    browser reconnects (and gets a fresh queue snapshot)."""
    try:
        async for event in subscription:
            if ws.closed or event.get("type") == "resync":
                break  # the console reconnects and refreshes
            await ws.send_str(_dumps(event))
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
    broker: Broker, ws: web.WebSocketResponse, member: str, session: Session
) -> None:
    """Presence heartbeat every 10 s; closes the socket when the session expires."""
    while not ws.closed:
        if time.time() >= session.expires_at:
            await ws.close(code=4401, message=b"session expired")
            return
        try:
            await broker.set_presence(member, PRESENCE_TTL_SECONDS)
        except BrokerError as exc:
            log.warning("console websocket: presence heartbeat failed: %s", exc)
        await asyncio.sleep(PRESENCE_INTERVAL_SECONDS)


async def websocket(request: web.Request) -> web.StreamResponse:
    auth = await _authenticate(request)
    if auth is None:
        return unauthenticated_response()
    if not _same_origin(request):
        return _error(403, "origin", "WebSocket connections are only accepted from the console.")
    agent, session = auth
    ctx = _ctx(request)
    broker = request.config_dict[BROKER]
    member = f"agent:{agent.id}"
    ws = web.WebSocketResponse(heartbeat=25.0, max_msg_size=64 * 1024)
    await ws.prepare(request)
    ctx.sockets.add(ws)
    ctx.presence[member] = ctx.presence.get(member, 0) + 1
    subscription: Subscription | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        # Subscribe before taking the snapshot, so no event falls between the two.
        subscription = await broker.subscribe(CONSOLE_TOPIC)
        snapshot = await request.config_dict[SERVICE].queue_snapshot()
        await ws.send_str(_dumps({"type": "queue", "items": snapshot}))
        tasks.append(asyncio.create_task(_forward(subscription, ws)))
        tasks.append(asyncio.create_task(_keep_alive(broker, ws, member, session)))
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
            # The agent's last console on this replica closed: show them offline now rather
            # than when the heartbeat expires (another replica's heartbeat re-adds them).
            with contextlib.suppress(BrokerError):
                await broker.set_presence(member, 0)
    return ws


async def _client_message(ws: web.WebSocketResponse, raw: str) -> None:
    """Messages from the browser: {"type": "ping"} and {"type": "watch", ...} (informational:
    every console socket receives every console event)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return
    if isinstance(data, dict) and data.get("type") == "ping":
        await ws.send_str(_dumps({"type": "pong"}))


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[CONSOLE].sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=1001, message=b"server shutdown")


# --- setup -----------------------------------------------------------------------------------


def _static_version() -> str:
    """One hash over every file under static/ (names and contents), for cache-busting.

    Pages load static files from ``/console/static/<version>/<name>``. console.js imports its
    modules by relative URL, so they resolve under the same versioned directory: a change to any
    file changes every URL, and a browser never mixes a new entry module with a stale cached one
    (a ``?v=`` query would not carry over to the imports).
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in STATIC_DIR.rglob("*") if p.is_file()):
        digest.update(path.relative_to(STATIC_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def setup_console(app: web.Application) -> None:
    """Add the console's pages, API, WebSocket and static files under /console."""
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # |tojson (for the page's JSON data block) escapes <, >, & and ' for HTML.
    templates.policies["json.dumps_kwargs"] = {"default": _json_default, "ensure_ascii": False}
    app[CONSOLE] = ConsoleContext(
        templates=templates, limiter=LoginRateLimiter(), static_version=_static_version()
    )
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(_close_sockets)

    r = app.router
    r.add_get(PREFIX, queue_page, name="console_queue")
    r.add_get(f"{PREFIX}/", queue_page)
    r.add_get(f"{PREFIX}/login", login_form, name="console_login")
    r.add_post(f"{PREFIX}/login", login_submit)
    r.add_post(f"{PREFIX}/logout", logout, name="console_logout")
    r.add_get(f"{PREFIX}/conversations/{{conversation_id}}", conversation_page)
    r.add_get(f"{PREFIX}/ws", websocket, name="console_ws")
    r.add_get(f"{PREFIX}/api/me", api_me)
    r.add_get(f"{PREFIX}/api/queue", api_queue)
    r.add_get(f"{PREFIX}/api/agents", api_agents)
    conv = f"{PREFIX}/api/conversations/{{conversation_id}}"
    r.add_get(conv, api_conversation)
    r.add_post(f"{conv}/claim", api_claim)
    r.add_post(f"{conv}/reply", api_reply)
    r.add_post(f"{conv}/notes", api_note)
    r.add_post(f"{conv}/transfer", api_transfer)
    r.add_post(f"{conv}/resolve", api_resolve)
    # The versioned directory is what pages use; the plain one serves the same files unversioned.
    r.add_static(f"{STATIC_PREFIX}{app[CONSOLE].static_version}/", STATIC_DIR)
    r.add_static(STATIC_PREFIX, STATIC_DIR, name="console_static")
