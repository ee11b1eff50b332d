"""Console sessions end on the server: a replayed cookie is refused after logout and after a
password change (the CLI's `agents passwd`), and a session nobody used for an hour is over.
A real gateway on a real SQLite file; the CLI runs as a separate process on the same file."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bot.appkeys import STORE
from bot.core.errors import NotFound
from bot.core.models import Agent
from bot.core.signing import Signer
from handoff.auth import SESSION_COOKIE, SESSION_PURPOSE, SessionCodec, hash_password
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway
from tests.helpers import AgentClient

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-secret-key-0123456789abcdef"  # gateway_settings' secret_key


def _cookie(client: AgentClient) -> str:
    cookies = client.http.cookie_jar.filter_cookies(client.base_url + "/console")  # type: ignore[arg-type]
    return cookies[SESSION_COOKIE].value


async def _me(http: aiohttp.ClientSession, gw: Gateway, cookie: str) -> int:
    async with http.get(
        f"{gw.url}/console/api/me", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}
    ) as resp:
        return resp.status


async def _kim(gw: Gateway) -> Agent:
    agent = await gw.app[STORE].agent_by_username("kim")
    assert agent is not None
    return agent


async def _signed_in(gw: Gateway, http: aiohttp.ClientSession) -> tuple[AgentClient, str]:
    """Kim signed in, and a copy of her session cookie (that works, for now)."""
    kim = await AgentClient(gw.url).login("kim", AGENT_PASSWORD)
    stolen = _cookie(kim)
    assert await _me(http, gw, stolen) == 200
    return kim, stolen


async def test_a_cookie_replayed_after_logout_is_refused(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    kim, stolen = await _signed_in(gateway, http)
    try:
        async with kim.http.post(
            f"{gateway.url}/console/logout",
            headers={"X-CSRF-Token": kim.csrf},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 302
    finally:
        await kim.close()
    assert await _me(http, gateway, stolen) == 401
    # Signing in again works, with a new cookie.
    again = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    await again.close()


async def test_a_password_change_ends_every_session(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    kim, stolen = await _signed_in(gateway, http)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "agents",
            "passwd",
            "kim",
            "--password-stdin",
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": gateway.settings.database_url,
                "GATEWAY_SECRET_KEY": SECRET,
            },
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(b"a-brand-new-password\n")
        assert proc.returncode == 0, err.decode()
        assert b"sessions have ended" in out
        assert await _me(http, gateway, stolen) == 401
        status, _ = await kim.api("GET", "/me")
        assert status == 401  # the agent's own browser too
    finally:
        await kim.close()
    renewed = await AgentClient(gateway.url).login("kim", "a-brand-new-password")
    await renewed.close()


async def test_an_idle_session_is_over_and_a_used_one_is_kept_alive(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    kim = await _kim(gateway)
    idle = SessionCodec(SECRET, clock=lambda: time.time() - 2 * 3600).encode(kim.id, "t")
    assert await _me(http, gateway, idle) == 401  # unused for two hours (of eight)
    recent = SessionCodec(SECRET, clock=lambda: time.time() - 10 * 60).encode(kim.id, "t")
    async with http.get(
        f"{gateway.url}/console/api/me", headers={"Cookie": f"{SESSION_COOKIE}={recent}"}
    ) as resp:
        assert resp.status == 200
        refreshed = resp.cookies[SESSION_COOKIE].value
    assert refreshed != recent
    assert await _me(http, gateway, refreshed) == 200


async def test_an_open_console_socket_closes_when_the_session_ends(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    kim, _ = await _signed_in(gateway, http)
    try:
        await kim.open_socket()
        assert kim.ws is not None
        await kim.wait_event(lambda e: e.get("type") == "queue", timeout=5)
        await gateway.app[STORE].end_sessions(
            (await _kim(gateway)).id
        )  # as logout or `agents passwd` do
        # The heartbeat re-checks the session every 10 s; nothing more streams after that.
        assert kim._reader is not None
        await asyncio.wait_for(asyncio.shield(kim._reader), timeout=15)  # the server closed it
        assert kim.ws.close_code == 4401
    finally:
        await kim.close()


async def test_a_cookie_from_before_session_versions_is_refused(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    kim = await _kim(gateway)
    signer = Signer(SECRET)
    now = int(time.time())
    old_style = signer.sign(
        {"agent_id": kim.id, "csrf": "t", "exp": now + 3600}, SESSION_PURPOSE
    )  # no "sv", no "seen": it would never idle out
    assert await _me(http, gateway, old_style) == 401


async def test_a_nul_in_the_username_is_a_failed_login_not_a_crash(gateway: Gateway) -> None:
    client = AgentClient(gateway.url)
    try:
        with pytest.raises(AssertionError, match="login failed: 401"):
            await client.login("kim\x00", AGENT_PASSWORD)
    finally:
        await client.close()


async def test_a_rehash_never_undoes_a_password_change(gateway: Gateway) -> None:
    store, kim = gateway.app[STORE], await _kim(gateway)
    changed = hash_password("changed-meanwhile-1")
    await store.set_agent_password(kim.id, changed, end_sessions=True)
    with pytest.raises(NotFound):  # the login's rehash of the old password loses
        await store.set_agent_password(kim.id, hash_password("x"), replacing=kim.password_hash)
    after = await store.agent(kim.id)
    assert after is not None and after.password_hash == changed
