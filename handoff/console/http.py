"""The console's HTTP plumbing: JSON, sessions, rendering, security headers, and the
``api``/``page`` decorators that map domain errors to statuses in one place."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from datetime import date, datetime
from enum import Enum
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from bot.broker import BrokerError
from bot.core.errors import BadMessage, Conflict, Forbidden, NotFound
from bot.core.files import FileRefused
from bot.core.models import Agent
from bot.core.state import IllegalTransition
from bot.http_errors import json_error
from bot.http_headers import security_headers as common_security_headers
from handoff.auth import (
    SESSION_COOKIE,
    Session,
    check_csrf,
    csrf_error_response,
    set_session_cookie,
    unauthenticated_response,
)
from handoff.console.context import (
    CONSOLE,
    PREFIX,
    STATIC_PREFIX,
    ApiError,
    ApiHandler,
    ConsoleContext,
    Handler,
    PageHandler,
)

log = logging.getLogger("handoff.console")


# --- JSON ------------------------------------------------------------------------------------


def json_default(value: Any) -> Any:
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


def dumps(value: Any) -> str:
    return json.dumps(value, default=json_default, ensure_ascii=False)


def json_ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


# --- helpers ---------------------------------------------------------------------------------


def console_ctx(request: web.Request) -> ConsoleContext:
    return request.config_dict[CONSOLE]


async def authenticate(request: web.Request) -> tuple[Agent, Session] | None:
    session = console_ctx(request).codec.decode(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    agent = await console_ctx(request).desk.agent(session.agent_id)
    if agent is None:  # the account was removed after the cookie was issued
        return None
    if session.version != agent.session_version:  # logged out, or the password changed
        return None
    return agent, session


def refresh_session(request: web.Request, session: Session, response: web.StreamResponse) -> None:
    """Reset the session's idle clock on ``response`` (at most once a minute)."""
    codec = console_ctx(request).codec
    value = codec.refreshed(session)
    if value is not None:
        set_session_cookie(response, request, value, max(0, session.expires_at - int(time.time())))


def agent_json(agent: Agent) -> dict[str, Any]:
    teams = agent.teams
    return {
        "id": agent.id,
        "username": agent.username,
        "display_name": agent.display_name,
        "role": getattr(agent.role, "value", agent.role),
        "teams": [teams] if isinstance(teams, str) else list(teams or []),
        "availability": agent.availability,
    }


def safe_next(target: str | None) -> str:
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


def redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


def login_url(next_path: str | None = None) -> str:
    if next_path and next_path != PREFIX:
        return f"{PREFIX}/login?next={quote(next_path, safe='/')}"
    return f"{PREFIX}/login"


def render(
    request: web.Request,
    template: str,
    *,
    status: int = 200,
    agent: Agent | None = None,
    csrf_token: str = "",
    **context: Any,
) -> web.Response:
    ctx = console_ctx(request)
    html = ctx.templates.get_template(template).render(
        agent=agent_json(agent) if agent is not None else None,
        csrf_token=csrf_token,
        static=lambda name: f"{STATIC_PREFIX}{ctx.static_version}/{name}",
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers for everything under /console (signal handler, so error pages get them too): the
    gateway's own (bot/http_headers.py), no framing even of JSON, and no caching but of the
    versioned static files."""
    path = request.path
    if path != PREFIX and not path.startswith(PREFIX + "/"):
        return
    await common_security_headers(request, response)
    response.headers.setdefault("X-Frame-Options", "DENY")
    if not path.startswith(STATIC_PREFIX):
        response.headers.setdefault("Cache-Control", "no-store")


def same_origin(request: web.Request) -> bool:
    """Whether a WebSocket handshake comes from a console page (blocks cross-site hijacking)."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser
        return True
    netloc = urlsplit(origin).netloc.lower()
    allowed = {request.host.lower()}
    public_url = getattr(getattr(console_ctx(request).settings, "http", None), "public_url", None)
    if public_url:
        allowed.add(urlsplit(public_url).netloc.lower())
    return netloc in allowed


# --- decorators ------------------------------------------------------------------------------


def api(handler: ApiHandler) -> Handler:
    """A JSON endpoint: session required (401), CSRF checked for unsafe methods (403), service
    errors mapped to 404/409, the handler's return value sent as JSON (or as it is, when the
    handler built a response itself)."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        auth = await authenticate(request)
        if auth is None:
            return unauthenticated_response()
        agent, session = auth
        if not await check_csrf(request, session):
            return csrf_error_response()
        try:
            result = await handler(request, agent)
        except ApiError as exc:
            return json_error(exc.status, exc.code, exc.message)
        except BadMessage as exc:
            return json_error(400, exc.code, str(exc))
        except FileRefused as exc:
            return json_error(exc.status, exc.code, str(exc))
        except Forbidden as exc:
            return json_error(403, "forbidden", str(exc))
        except NotFound as exc:
            return json_error(404, "not_found", str(exc) or "No such conversation.")
        except (Conflict, IllegalTransition) as exc:
            return json_error(409, "conflict", str(exc) or "That is not possible right now.")
        except BrokerError:
            log.exception("console API: broker unavailable")
            return json_error(
                503, "unavailable", "The server is busy reconnecting. Try again shortly."
            )
        except web.HTTPException:
            raise
        except Exception:
            log.exception("console API: %s %s failed", request.method, request.path)
            return json_error(500, "internal", "Something went wrong on the server. Try again.")
        # A handler may answer with its own response (a CSV download); anything else is JSON.
        response = result if isinstance(result, web.StreamResponse) else json_ok(result)
        refresh_session(request, session, response)
        return response

    return wrapper


def page(handler: PageHandler) -> Handler:
    """An HTML page for signed-in agents; everyone else goes to the login page."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        auth = await authenticate(request)
        if auth is None:
            raise web.HTTPFound(login_url(request.path_qs))
        agent, session = auth
        response = await handler(request, agent, session)
        refresh_session(request, session, response)
        return response

    return wrapper
