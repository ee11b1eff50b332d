"""The agent console: login, live queue, conversation workspace, their JSON and WebSocket API.

Everything lives under ``/console``. Pages are server-rendered shells (Jinja2, autoescaped) that
``static/console.js`` fills from the JSON API and keeps live over ``/console/ws``. Nothing a
customer or agent typed is ever inserted as HTML, and pages forbid inline script through their
Content-Security-Policy.

Package map: ``context`` (settings, paths, per-app state), ``http`` (JSON, sessions, rendering,
the decorators), ``login``, ``pages``, ``api`` (JSON API over the agent desk), ``live`` (websocket).
"""

from __future__ import annotations

import hashlib

import jinja2
from aiohttp import web

from bot.config import Settings
from handoff.console.api import (
    api_acknowledge_alert,
    api_agents,
    api_availability,
    api_claim,
    api_conversation,
    api_customer,
    api_dashboard,
    api_dashboard_csv,
    api_export_training,
    api_file,
    api_health,
    api_inbox,
    api_link_identity,
    api_me,
    api_note,
    api_queue,
    api_read,
    api_reply,
    api_resolve,
    api_teams,
    api_transfer,
    api_typing,
    api_unlink_identity,
    api_unread,
    api_update_agent,
)
from handoff.console.canned import add_routes as add_canned_routes
from handoff.console.context import (
    CONSOLE,
    PREFIX,
    STATIC_DIR,
    STATIC_PREFIX,
    TEMPLATES_DIR,
    ConsoleContext,
)
from handoff.console.http import json_default, security_headers
from handoff.console.live import close_sockets, websocket
from handoff.console.login import login_form, login_submit, logout
from handoff.console.pages import (
    canned_page,
    conversation_page,
    customer_page,
    dashboard_page,
    inbox_page,
    queue_page,
    team_page,
)
from handoff.throttle import LoginThrottle

__all__ = ["CONSOLE", "ConsoleContext", "setup_console"]


def static_version() -> str:
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


def setup_console(app: web.Application, settings: Settings) -> ConsoleContext:
    """Add the console's pages, API, WebSocket and static files under /console."""
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # |tojson (for the page's JSON data block) escapes <, >, & and ' for HTML.
    templates.policies["json.dumps_kwargs"] = {"default": json_default, "ensure_ascii": False}
    app[CONSOLE] = ConsoleContext(
        templates=templates,
        throttle=LoginThrottle(settings.redis_url),
        static_version=static_version(),
        settings=settings,
    )
    app.on_response_prepare.append(security_headers)
    app.on_shutdown.append(close_sockets)
    app.on_cleanup.append(lambda app: app[CONSOLE].throttle.close())

    r = app.router
    r.add_get(PREFIX, queue_page, name="console_queue")
    r.add_get(f"{PREFIX}/", queue_page)
    r.add_get(f"{PREFIX}/team", team_page)
    r.add_get(f"{PREFIX}/canned", canned_page)
    r.add_get(f"{PREFIX}/inbox", inbox_page)
    r.add_get(f"{PREFIX}/customers/{{customer_id}}", customer_page)
    r.add_get(f"{PREFIX}/dashboard", dashboard_page)
    r.add_get(f"{PREFIX}/login", login_form, name="console_login")
    r.add_post(f"{PREFIX}/login", login_submit)
    r.add_post(f"{PREFIX}/logout", logout, name="console_logout")
    r.add_get(f"{PREFIX}/conversations/{{conversation_id}}", conversation_page)
    r.add_get(f"{PREFIX}/ws", websocket, name="console_ws")
    r.add_get(f"{PREFIX}/api/me", api_me)
    r.add_get(f"{PREFIX}/api/health", api_health)
    r.add_get(f"{PREFIX}/api/queue", api_queue)
    r.add_get(f"{PREFIX}/api/agents", api_agents)
    r.add_post(f"{PREFIX}/api/agents/{{agent_id}}", api_update_agent)
    r.add_get(f"{PREFIX}/api/teams", api_teams)
    r.add_get(f"{PREFIX}/api/conversations", api_inbox)
    r.add_get(f"{PREFIX}/api/unread", api_unread)
    r.add_get(f"{PREFIX}/api/export-training", api_export_training)
    r.add_post(f"{PREFIX}/api/alerts/{{alert_id}}/acknowledge", api_acknowledge_alert)
    customer = f"{PREFIX}/api/customers/{{customer_id}}"
    r.add_get(customer, api_customer)
    r.add_post(f"{customer}/identities", api_link_identity)
    r.add_post(f"{customer}/identities/unlink", api_unlink_identity)
    r.add_get(f"{PREFIX}/api/dashboard", api_dashboard)
    r.add_get(f"{PREFIX}/api/dashboard.csv", api_dashboard_csv)
    r.add_post(f"{PREFIX}/api/me/availability", api_availability)
    conv = f"{PREFIX}/api/conversations/{{conversation_id}}"
    r.add_get(conv, api_conversation)
    r.add_post(f"{conv}/claim", api_claim)
    r.add_post(f"{conv}/reply", api_reply)
    r.add_post(f"{conv}/files", api_file)
    r.add_post(f"{conv}/typing", api_typing)
    r.add_post(f"{conv}/read", api_read)
    r.add_post(f"{conv}/notes", api_note)
    r.add_post(f"{conv}/transfer", api_transfer)
    r.add_post(f"{conv}/resolve", api_resolve)
    add_canned_routes(r, PREFIX)
    # The versioned directory is what pages use; the plain one serves the same files unversioned.
    r.add_static(f"{STATIC_PREFIX}{app[CONSOLE].static_version}/", STATIC_DIR)
    r.add_static(STATIC_PREFIX, STATIC_DIR, name="console_static")
    return app[CONSOLE]
