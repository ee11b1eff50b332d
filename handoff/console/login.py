"""Signing in and out: the login form with its CSRF pair, throttled password checks."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from bot.core.types import is_text
from bot.http_headers import client_address
from handoff.auth import (
    LOGIN_CSRF_COOKIE,
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
    verify_password,
)
from handoff.console.context import MAX_PASSWORD_CHARS, MAX_USERNAME_CHARS, PREFIX, WRONG_LOGIN
from handoff.console.http import authenticate, console_ctx, redirect, render, safe_next

log = logging.getLogger("handoff.console")


# --- login / logout --------------------------------------------------------------------------


def _login_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    username: str = "",
    next_path: str = PREFIX,
) -> web.Response:
    cookie_value, form_token = console_ctx(request).codec.login_csrf_pair()
    response = render(
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
    next_path = safe_next(request.query.get("next"))
    if await authenticate(request) is not None:
        raise web.HTTPFound(next_path)
    return _login_page(request, next_path=next_path)


def _form_str(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def login_submit(request: web.Request) -> web.StreamResponse:
    ctx = console_ctx(request)
    codec = ctx.codec
    form = await request.post()
    if not codec.check_login_csrf(
        request.cookies.get(LOGIN_CSRF_COOKIE), _form_str(form, "csrf_token")
    ):
        return csrf_error_response()
    username = _form_str(form, "username").strip()
    password = _form_str(form, "password")
    next_path = safe_next(_form_str(form, "next"))

    address = client_address(request, ctx.settings.http.trusted_proxies)
    wait = await ctx.throttle.attempt(address, username)
    if wait:
        log.warning(
            "console login throttled for %r from %s (%d s)",
            username[:MAX_USERNAME_CHARS],
            address,
            wait,
        )
        minutes = max(1, round(wait / 60))
        response = _login_page(
            request,
            status=429,
            error=f"Too many failed sign-in attempts. Try again in {minutes} "
            f"minute{'s' if minutes != 1 else ''}.",
            username=username,
            next_path=next_path,
        )
        response.headers["Retry-After"] = str(wait)
        return response

    agent = None
    if (
        username
        and len(username) <= MAX_USERNAME_CHARS
        and len(password) <= MAX_PASSWORD_CHARS
        and is_text(username)
    ):
        agent = await ctx.desk.agent_by_username(username)
    if agent is not None:
        # argon2 takes tens of milliseconds of CPU: keep the event loop free meanwhile.
        ok = await asyncio.to_thread(verify_password, agent.password_hash, password)
    else:
        await asyncio.to_thread(burn_password_check, password)  # same timing as a wrong password
        ok = False
    if not ok or agent is None:
        log.info("console login failed for %r from %s", username[:MAX_USERNAME_CHARS], address)
        return _login_page(
            request, status=401, error=WRONG_LOGIN, username=username, next_path=next_path
        )

    await ctx.throttle.reset(address, username)
    if needs_rehash(agent.password_hash):
        try:
            new_hash = await asyncio.to_thread(hash_password, password)
            await ctx.desk.set_password_hash(agent.id, new_hash, replacing=agent.password_hash)
        except Exception:  # an old hash still works; never fail a good login over this
            log.exception("could not upgrade the password hash of agent %s", agent.id)
    response = redirect(next_path)
    set_session_cookie(
        response,
        request,
        codec.encode(agent.id, new_csrf_token(), agent.session_version),
        codec.ttl_seconds,
    )
    clear_login_csrf_cookie(response)
    log.info("console login: agent %s (%s)", agent.id, agent.username)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    auth = await authenticate(request)  # a revoked cookie cannot log anybody out again
    if auth is not None:
        agent, session = auth
        if not await check_csrf(request, session):
            return csrf_error_response()
        # Ended on the server too: a copy of the cookie is worthless from now on.
        await console_ctx(request).desk.end_sessions(agent.id)
    response = redirect(f"{PREFIX}/login")
    clear_session_cookie(response)
    return response
