"""Console authentication: password hashing, the signed session cookie, CSRF, login rate limiting,
and the console routes that enforce them (aiohttp test client; a small stand-in for the
conversation service, the real Store on SQLite and the real in-process broker)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from argon2 import PasswordHasher

from bot.broker import Broker, BrokerError, create_broker
from bot.config import Settings
from bot.core.errors import Conflict, NotFound
from bot.core.models import Agent, Note
from bot.core.state import ConversationEvent, ConversationState, IllegalTransition
from bot.core.types import Direction, SenderKind, StoredMessage
from bot.store import Store
from handoff.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SessionCodec,
    check_csrf,
    csrf_matches,
    hash_password,
    needs_rehash,
    verify_password,
)
from handoff.console import setup_console
from handoff.console.context import STATIC_DIR
from handoff.console.http import safe_next as _safe_next
from handoff.desk import AgentDesk

SECRET = "test-secret-key-0123456789abcdef"
PASSWORD = "correct-horse-battery"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- passwords -------------------------------------------------------------------------------


def test_hash_and_verify() -> None:
    hashed = hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$")
    assert PASSWORD not in hashed
    assert verify_password(hashed, PASSWORD)
    assert not verify_password(hashed, PASSWORD + "x")
    assert not verify_password(hashed, "")
    assert hash_password(PASSWORD) != hashed  # salted


def test_verify_with_malformed_hash_is_false() -> None:
    assert not verify_password("not-a-hash", PASSWORD)
    assert not verify_password("", PASSWORD)
    assert not verify_password("$argon2id$v=19$m=1,t=1,p=1$broken", PASSWORD)


def test_needs_rehash() -> None:
    assert not needs_rehash(hash_password(PASSWORD))
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    assert verify_password(weak, PASSWORD)  # still accepted...
    assert needs_rehash(weak)  # ...but due for an upgrade
    assert needs_rehash("garbage")


# --- session cookie --------------------------------------------------------------------------


def test_session_round_trip() -> None:
    clock = FakeClock()
    codec = SessionCodec(SECRET, ttl_seconds=3600, clock=clock)
    cookie = codec.encode(42, "csrf-token-value")
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", cookie)  # cookie-safe, no padding
    session = codec.decode(cookie)
    assert session is not None
    assert (session.agent_id, session.csrf) == (42, "csrf-token-value")
    assert session.expires_at == int(clock.now) + 3600


def test_any_replica_with_the_same_secret_accepts_the_cookie() -> None:
    cookie = SessionCodec(SECRET).encode(7, "t")
    other_replica = SessionCodec(SECRET)
    session = other_replica.decode(cookie)
    assert session is not None and session.agent_id == 7
    assert SessionCodec(SECRET + "-other").decode(cookie) is None


def test_session_expiry() -> None:
    clock = FakeClock()
    codec = SessionCodec(SECRET, ttl_seconds=60, clock=clock)
    cookie = codec.encode(1, "t")
    clock.now += 59
    assert codec.decode(cookie) is not None
    clock.now += 1
    assert codec.decode(cookie) is None


def _flip(char: str) -> str:
    return "A" if char != "A" else "B"


def test_tampered_cookies_are_rejected() -> None:
    codec = SessionCodec(SECRET)
    cookie = codec.encode(1, "t")
    payload, signature = cookie.split(".")
    # Another agent id with the old signature.
    forged_body = json.dumps({"agent_id": 2, "csrf": "t", "exp": 4_000_000_000})
    forged = base64.urlsafe_b64encode(forged_body.encode()).rstrip(b"=").decode()
    assert codec.decode(f"{forged}.{signature}") is None
    assert codec.decode(f"{payload[:-1]}{_flip(payload[-1])}.{signature}") is None
    assert codec.decode(f"{payload}.{signature[:-1]}{_flip(signature[-1])}") is None
    assert codec.decode(f"{payload}.") is None
    assert codec.decode(payload) is None
    assert codec.decode(f"{payload}.{signature}.extra") is None


@pytest.mark.parametrize(
    "cookie", [None, "", ".", "abc", "ä.ö", "a.b", "x" * 5000, "\udcff.\udcff", "%%%.%%%"]
)
def test_garbage_cookies_are_rejected(cookie: str | None) -> None:
    assert SessionCodec(SECRET).decode(cookie) is None


def test_validly_signed_but_malformed_payloads_are_rejected() -> None:
    codec = SessionCodec(SECRET)
    for body in [
        b"not json",
        b"[1, 2]",
        b'{"agent_id": "1", "csrf": "t", "exp": 4000000000}',
        b'{"agent_id": true, "csrf": "t", "exp": 4000000000}',
        b'{"agent_id": 1, "csrf": "", "exp": 4000000000}',
        b'{"agent_id": 1, "csrf": "t", "exp": 4000000000.5}',
        b'{"agent_id": 1, "csrf": "t"}',
    ]:
        payload = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
        assert codec.decode(f"{payload}.{codec._sign(payload)}") is None, body


def test_codec_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError):
        SessionCodec("")
    with pytest.raises(ValueError):
        SessionCodec(SECRET, ttl_seconds=0)


# --- CSRF ------------------------------------------------------------------------------------


def test_csrf_matches() -> None:
    assert csrf_matches("abc", "abc")
    assert not csrf_matches("abc", "abd")
    assert not csrf_matches("abc", "")
    assert not csrf_matches("abc", None)
    assert not csrf_matches("", "")
    assert not csrf_matches(None, None)
    assert not csrf_matches("abc", "äbc")  # non-ASCII input does not crash compare_digest


def test_login_csrf_pair() -> None:
    codec = SessionCodec(SECRET)
    cookie, token = codec.login_csrf_pair()
    assert cookie != token
    assert codec.check_login_csrf(cookie, token)
    _other_cookie, other_token = codec.login_csrf_pair()
    assert not codec.check_login_csrf(cookie, other_token)
    assert not codec.check_login_csrf(None, token)
    assert not codec.check_login_csrf(cookie, None)
    assert not codec.check_login_csrf(cookie, cookie)  # the cookie value alone is not the token
    # A token from another deployment (other secret) is worthless.
    assert not SessionCodec(SECRET + "x").check_login_csrf(cookie, token)


async def test_check_csrf_on_methods() -> None:
    codec = SessionCodec(SECRET)
    session = codec.decode(codec.encode(1, "the-token"))
    assert session is not None
    get = make_mocked_request("GET", "/console/api/me")
    assert await check_csrf(get, session)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        bare = make_mocked_request(method, "/console/api/x")
        assert not await check_csrf(bare, session), method
        wrong = make_mocked_request(method, "/console/api/x", headers={"X-CSRF-Token": "nope"})
        assert not await check_csrf(wrong, session), method
        right = make_mocked_request(method, "/console/api/x", headers={"X-CSRF-Token": "the-token"})
        assert await check_csrf(right, session), method


def test_safe_next_prevents_open_redirects() -> None:
    assert _safe_next(None) == "/console"
    assert _safe_next("/console/conversations/abc") == "/console/conversations/abc"
    assert _safe_next("/console?x=1") == "/console?x=1"
    for evil in [
        "https://evil.example/console",
        "//evil.example/console",
        "/\\evil.example",
        "/consolefoo",
        "/other",
        "javascript:alert(1)",
        "/console/api/me",
        "/console/static/console.js",
    ]:
        assert _safe_next(evil) == "/console", evil


# --- HTTP: a console on a real Store and broker, with a stand-in conversation service ----------


def _message(conversation_id: str, seq: int, text: str, sender: SenderKind) -> StoredMessage:
    return StoredMessage(
        id=seq,
        conversation_id=conversation_id,
        seq=seq,
        direction=Direction.INBOUND if sender is SenderKind.CUSTOMER else Direction.OUTBOUND,
        sender_kind=sender,
        text=text,
        created_at=datetime(2026, 11, 23, 12, 0, seq, tzinfo=UTC),
    )


@dataclass
class FakeConversation:
    state: ConversationState = ConversationState.QUEUED
    assigned_agent_id: int | None = None


class FakeService:
    """Just enough of ConversationService for the console's routes (records what it is asked)."""

    def __init__(self, store: Store, broker: Broker, settings: Settings) -> None:
        self.store, self.broker, self.settings = store, broker, settings
        self.conversations: dict[str, FakeConversation] = {"c1": FakeConversation()}
        self.calls: list[tuple[Any, ...]] = []
        self.next_error: Exception | None = None

    def _get(self, conversation_id: str) -> FakeConversation:
        if self.next_error is not None:
            error, self.next_error = self.next_error, None
            raise error
        if conversation_id not in self.conversations:
            raise NotFound(f"unknown conversation {conversation_id}")
        return self.conversations[conversation_id]

    # The agent directory and presence are the desk's own code over the real store and broker.
    agent = AgentDesk.agent
    agent_by_username = AgentDesk.agent_by_username
    set_password_hash = AgentDesk.set_password_hash
    end_sessions = AgentDesk.end_sessions
    agents_with_presence = AgentDesk.agents_with_presence
    subscribe_console = AgentDesk.subscribe_console
    set_presence = AgentDesk.set_presence

    async def console_opened(self, agent: Agent) -> None:
        self.calls.append(("console_opened", agent.id))

    async def queue_snapshot(self) -> list[dict[str, Any]]:
        return [
            {"conversation_id": cid, "state": c.state.value, "customer_name": "Kim"}
            for cid, c in self.conversations.items()
        ]

    async def conversation_view(self, conversation_id: str) -> dict[str, Any]:
        conversation = self._get(conversation_id)
        return {
            "conversation": {"id": conversation_id, "state": conversation.state.value},
            "customer": {"display_name": "Kim </script><b>bold</b>"},
            "packet": None,
            "messages": [
                _message(
                    conversation_id, 1, "</script><script>alert(1)</script>", SenderKind.CUSTOMER
                ).to_dict()
            ],
            "notes": [],
            "handoff": None,
        }

    async def claim(self, conversation_id: str, agent: Agent) -> None:
        conversation = self._get(conversation_id)
        if conversation.state is ConversationState.ASSIGNED:
            raise Conflict("Amy already took this conversation.")
        self.calls.append(("claim", conversation_id, agent.id))
        conversation.state, conversation.assigned_agent_id = ConversationState.ASSIGNED, agent.id

    async def agent_reply(self, conversation_id: str, agent: Agent, text: str) -> StoredMessage:
        self._get(conversation_id)
        self.calls.append(("reply", conversation_id, agent.id, text))
        return _message(conversation_id, 2, text, SenderKind.AGENT)

    async def add_note(self, conversation_id: str, agent: Agent, text: str) -> Note:
        self._get(conversation_id)
        self.calls.append(("note", conversation_id, agent.id, text))
        return Note(1, conversation_id, agent.id, agent.display_name, text, datetime.now(UTC))

    async def transfer(self, conversation_id: str, agent: Agent, to_agent_id: int) -> None:
        self._get(conversation_id)
        self.calls.append(("transfer", conversation_id, agent.id, to_agent_id))

    async def resolve(
        self,
        conversation_id: str,
        agent: Agent,
        disposition: object = None,
        bot_should_have_handled: object = False,
    ) -> None:
        conversation = self._get(conversation_id)
        if conversation.state is not ConversationState.ASSIGNED:
            raise IllegalTransition(conversation.state, ConversationEvent.RESOLVE)
        self.calls.append(("resolve", conversation_id, agent.id))


@dataclass
class Console:
    client: TestClient[web.Request, web.Application]
    store: Store
    broker: Broker
    service: FakeService
    amy: Agent
    bob: Agent


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    settings = Settings.model_validate(
        {
            "secret_key": SECRET,
            "database_url": f"sqlite:///{tmp_path / 'gw.sqlite3'}",
            "limits": {"max_message_chars": 50},
            # A closed console counts as away after this (a reload in between does not).
            "queue": {"away_after_seconds": 0.5},
        }
    )
    store = await Store.connect(settings.database_url)
    await store.migrate()
    hashed = hash_password(PASSWORD)
    amy = await store.add_agent("amy", "Amy Agent", hashed, teams=["general"])
    bob = await store.add_agent("bob", "Bob Builder", hashed, role="supervisor")
    broker = create_broker(None)
    service = FakeService(store, broker, settings)
    app = web.Application()
    setup_console(app, settings).start(cast(AgentDesk, service))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Console(client, store, broker, service, amy, bob)
    finally:
        await client.close()
        await broker.close()
        await store.close()


async def _login_form(client: TestClient[Any, Any]) -> str:
    resp = await client.get("/console/login")
    assert resp.status == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
    assert match
    return match.group(1)


async def _login(c: Console, username: str = "amy", password: str = PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token from the queue page."""
    token = await _login_form(c.client)
    resp = await c.client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 302, await resp.text()
    page = await (await c.client.get("/console")).text()
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert match
    return match.group(1)


async def test_login_page(console: Console) -> None:
    resp = await console.client.get("/console/login")
    assert resp.status == 200
    html = await resp.text()
    for testid in ("login-username", "login-password", "login-submit"):
        assert f'data-testid="{testid}"' in html
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in html  # no inline script anywhere
    cookie = resp.cookies[LOGIN_CSRF_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console"


async def test_login_success_sets_a_strict_session_cookie(console: Console) -> None:
    token = await _login_form(console.client)
    resp = await console.client.post(
        "/console/login",
        data={"username": "amy", "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 302
    assert resp.headers["Location"] == "/console"
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console"
    assert not cookie["secure"]  # plain http in the test; https requests get Secure
    session = SessionCodec(SECRET).decode(cookie.value)
    assert session is not None and session.agent_id == console.amy.id


async def test_login_redirects_to_next(console: Console) -> None:
    resp = await console.client.get("/console/conversations/c1", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/console/login?next=/console/conversations/c1"
    token = await _login_form(console.client)
    resp = await console.client.post(
        "/console/login",
        data={
            "username": "amy",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "/console/conversations/c1",
        },
        allow_redirects=False,
    )
    assert resp.headers["Location"] == "/console/conversations/c1"


async def test_login_without_csrf_is_refused(console: Console) -> None:
    await _login_form(console.client)
    for token in ["", "forged"]:
        resp = await console.client.post(
            "/console/login",
            data={"username": "amy", "password": PASSWORD, "csrf_token": token},
            allow_redirects=False,
        )
        assert resp.status == 403
        assert (await resp.json())["error"] == "csrf"
        assert SESSION_COOKIE not in resp.cookies


async def test_wrong_password_and_unknown_user_look_the_same(console: Console) -> None:
    bodies = []
    for username, password in [("amy", "wrong"), ("nobody", PASSWORD)]:
        token = await _login_form(console.client)
        resp = await console.client.post(
            "/console/login",
            data={"username": username, "password": password, "csrf_token": token},
        )
        assert resp.status == 401
        html = await resp.text()
        assert "Wrong username or password" in html
        assert SESSION_COOKIE not in resp.cookies
        bodies.append(html.replace(username, "USER"))
    # Apart from the echoed username and the fresh CSRF token, the two pages are identical.
    strip = re.compile(r'(value|content)="[^"]*"')
    assert strip.sub("", bodies[0]) == strip.sub("", bodies[1])


async def test_login_echoes_the_username_escaped(console: Console) -> None:
    token = await _login_form(console.client)
    resp = await console.client.post(
        "/console/login",
        data={"username": '"><script>alert(1)</script>', "password": "x", "csrf_token": token},
    )
    html = await resp.text()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)" in html


async def test_login_rate_limit(console: Console) -> None:
    for _ in range(5):
        token = await _login_form(console.client)
        resp = await console.client.post(
            "/console/login", data={"username": "amy", "password": "bad", "csrf_token": token}
        )
        assert resp.status == 401
    token = await _login_form(console.client)
    resp = await console.client.post(
        "/console/login", data={"username": "amy", "password": PASSWORD, "csrf_token": token}
    )
    assert resp.status == 429  # even the right password waits now
    assert int(resp.headers["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in await resp.text()
    # Other accounts are not affected.
    assert await _login(console, "bob")


async def test_pages_need_a_session(console: Console) -> None:
    resp = await console.client.get("/console", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/console/login"


async def test_api_needs_a_session(console: Console) -> None:
    for method, path in [
        ("GET", "/console/api/me"),
        ("GET", "/console/api/queue"),
        ("GET", "/console/api/agents"),
        ("GET", "/console/api/conversations/c1"),
        ("POST", "/console/api/conversations/c1/claim"),
        ("GET", "/console/ws"),
    ]:
        resp = await console.client.request(method, path)
        assert resp.status == 401, path
        assert (await resp.json())["error"] == "unauthenticated"
    console.client.session.cookie_jar.update_cookies(
        {SESSION_COOKIE: SessionCodec(SECRET + "-forged").encode(console.amy.id, "t")}
    )
    assert (await console.client.get("/console/api/me")).status == 401


async def test_me_and_queue_page(console: Console) -> None:
    await _login(console)
    resp = await console.client.get("/console")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    html = await resp.text()
    assert f'data-agent-id="{console.amy.id}"' in html
    me = await (await console.client.get("/console/api/me")).json()
    assert me == {
        "id": console.amy.id,
        "username": "amy",
        "display_name": "Amy Agent",
        "role": "agent",
        "teams": ["general"],
        "availability": "online",
    }
    queue = await (await console.client.get("/console/api/queue")).json()
    assert queue["items"][0]["conversation_id"] == "c1"


async def test_state_changes_need_the_csrf_header(console: Console) -> None:
    csrf = await _login(console)
    resp = await console.client.post("/console/api/conversations/c1/claim")
    assert resp.status == 403
    assert (await resp.json())["error"] == "csrf"
    resp = await console.client.post(
        "/console/api/conversations/c1/claim", headers={"X-CSRF-Token": csrf + "x"}
    )
    assert resp.status == 403
    assert console.service.calls == []
    resp = await console.client.post(
        "/console/api/conversations/c1/claim", headers={"X-CSRF-Token": csrf}
    )
    assert resp.status == 200
    assert console.service.calls == [("claim", "c1", console.amy.id)]


async def test_domain_errors(console: Console) -> None:
    csrf = await _login(console)
    headers = {"X-CSRF-Token": csrf}
    resp = await console.client.post("/console/api/conversations/nope/claim", headers=headers)
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"
    assert (await console.client.get("/console/api/conversations/nope")).status == 404
    await console.client.post("/console/api/conversations/c1/claim", headers=headers)
    resp = await console.client.post("/console/api/conversations/c1/claim", headers=headers)
    assert resp.status == 409
    assert await resp.json() == {
        "error": "conflict",
        "message": "Amy already took this conversation.",
    }
    console.service.conversations["c2"] = FakeConversation()
    resp = await console.client.post("/console/api/conversations/c2/resolve", headers=headers)
    assert resp.status == 409
    assert "cannot resolve" in (await resp.json())["message"]
    console.service.next_error = BrokerError("redis is down")
    resp = await console.client.get("/console/api/conversations/c1")
    assert resp.status == 503
    assert (await resp.json())["error"] == "unavailable"
    console.service.next_error = RuntimeError("boom")
    resp = await console.client.get("/console/api/conversations/c1")
    assert resp.status == 500
    assert (await resp.json())["error"] == "internal"
    assert "boom" not in await resp.text()  # no internals leak to the browser


async def test_reply_validation(console: Console) -> None:
    csrf = await _login(console)
    url = "/console/api/conversations/c1/reply"
    headers = {"X-CSRF-Token": csrf}
    for body in ["{not json", "[1]", "{}", '{"text": 5}', '{"text": "   "}']:
        resp = await console.client.post(
            url, data=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert resp.status == 400, body
        assert set(await resp.json()) == {"error", "message"}
    resp = await console.client.post(url, json={"text": "x" * 51}, headers=headers)
    assert resp.status == 400
    error = await resp.json()
    assert error["error"] == "too_long" and "too long" in error["message"]
    assert console.service.calls == []
    resp = await console.client.post(url, json={"text": "  Hello there \n"}, headers=headers)
    assert resp.status == 200
    assert (await resp.json())["message"]["text"] == "Hello there"
    assert console.service.calls == [("reply", "c1", console.amy.id, "Hello there")]


async def test_notes_transfer_resolve(console: Console) -> None:
    csrf = await _login(console)
    headers = {"X-CSRF-Token": csrf}
    base = "/console/api/conversations/c1"
    resp = await console.client.post(
        f"{base}/notes", json={"text": "VIP, be nice"}, headers=headers
    )
    assert resp.status == 200
    note = (await resp.json())["note"]
    assert note["text"] == "VIP, be nice" and note["agent_name"] == "Amy Agent"
    for body in [{}, {"agent_id": "2"}, {"agent_id": True}, {"agent_id": 999}]:
        resp = await console.client.post(f"{base}/transfer", json=body, headers=headers)
        assert resp.status == 400, body
    resp = await console.client.post(
        f"{base}/transfer", json={"agent_id": console.bob.id}, headers=headers
    )
    assert resp.status == 200
    await console.client.post(f"{base}/claim", headers=headers)
    resp = await console.client.post(f"{base}/resolve", headers=headers)
    assert resp.status == 200
    assert [c[0] for c in console.service.calls] == ["note", "transfer", "claim", "resolve"]


async def test_agents_with_presence(console: Console) -> None:
    await _login(console)
    await console.broker.set_presence(f"agent:{console.bob.id}", 30)
    agents = await (await console.client.get("/console/api/agents")).json()
    fields = ("id", "display_name", "username", "online", "availability")
    assert [{k: a[k] for k in fields} for a in agents] == [
        {
            "id": console.amy.id,
            "display_name": "Amy Agent",
            "username": "amy",
            "online": False,
            "availability": "away",
        },  # no console open
        {
            "id": console.bob.id,
            "display_name": "Bob Builder",
            "username": "bob",
            "online": True,
            "availability": "online",
        },
    ]
    assert all("password_hash" not in a for a in agents)


async def test_conversation_page_embeds_data_safely(console: Console) -> None:
    await _login(console)
    resp = await console.client.get("/console/conversations/c1")
    assert resp.status == 200
    html = await resp.text()
    for testid in (
        "context-card",
        "transcript",
        "reply-input",
        "reply-send",
        "note-input",
        "note-add",
        "resolve-button",
        "transfer-select",
        "transfer-button",
        "claim-button",
    ):
        assert f'data-testid="{testid}"' in html, testid
    assert "<script>alert(1)" not in html
    assert "<b>bold</b>" not in html
    data = re.search(
        r'<script type="application/json" id="initial-view">(.*?)</script>', html, re.S
    )
    assert data
    view = json.loads(data.group(1))
    assert view["messages"][0]["text"] == "</script><script>alert(1)</script>"
    resp = await console.client.get("/console/conversations/missing")
    assert resp.status == 404
    assert "Conversation not found" in await resp.text()


async def test_logout(console: Console) -> None:
    csrf = await _login(console)
    resp = await console.client.post("/console/logout", data={}, allow_redirects=False)
    assert resp.status == 403  # a forged logout form is refused
    resp = await console.client.post(
        "/console/logout", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert resp.status == 302
    assert resp.headers["Location"] == "/console/login"
    assert resp.cookies[SESSION_COOKIE].value == ""
    assert (await console.client.get("/console/api/me")).status == 401


async def test_static_files(console: Console) -> None:
    resp = await console.client.get("/console/static/console.js")
    assert resp.status == 200
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "innerHTML" not in (await resp.text()).replace("never innerHTML", "")


async def test_console_modules_are_served_versioned_and_never_use_inner_html(
    console: Console,
) -> None:
    """Pages load the entry and its ES modules from one versioned folder; no module builds HTML
    from strings (user text must stay text)."""
    await _login(console)
    page = await (await console.client.get("/console")).text()
    match = re.search(
        r'<script type="module" src="(/console/static/[0-9a-f]{12}/)console.js"', page
    )
    assert match is not None, page
    modules = sorted((STATIC_DIR / "console").glob("*.js"))
    assert len(modules) >= 10
    for module in modules:
        resp = await console.client.get(f"{match.group(1)}console/{module.name}")
        assert resp.status == 200, module.name
        assert "javascript" in resp.headers["Content-Type"]
        assert "innerHTML" not in (await resp.text()).replace("never innerHTML", ""), module.name


async def test_websocket(console: Console) -> None:
    await _login(console)
    ws = await console.client.ws_connect("/console/ws")
    first = await ws.receive_json(timeout=5)
    assert first["type"] == "queue" and first["items"][0]["conversation_id"] == "c1"
    for _ in range(50):  # the presence heartbeat starts right after the snapshot
        if f"agent:{console.amy.id}" in await console.broker.present():
            break
        await asyncio.sleep(0.02)
    assert f"agent:{console.amy.id}" in await console.broker.present()
    event = {"type": "conversation", "conversation_id": "c1", "state": "assigned"}
    await console.broker.publish("console", event)
    assert await ws.receive_json(timeout=5) == event
    await ws.send_json({"type": "watch", "conversation_id": "c1"})
    await ws.send_json({"type": "ping"})
    assert await ws.receive_json(timeout=5) == {"type": "pong"}
    await ws.close()
    await asyncio.sleep(0.1)
    assert f"agent:{console.amy.id}" in await console.broker.present()  # a reload is no absence
    for _ in range(100):
        if f"agent:{console.amy.id}" not in await console.broker.present():
            break
        await asyncio.sleep(0.02)
    assert f"agent:{console.amy.id}" not in await console.broker.present()
    assert ("console_opened", console.amy.id) in console.service.calls


async def test_websocket_refuses_other_origins(console: Console) -> None:
    await _login(console)
    resp = await console.client.get(
        "/console/ws",
        headers={
            "Origin": "https://evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert resp.status == 403
    ws = await console.client.ws_connect(
        "/console/ws", headers={"Origin": str(console.client.make_url("")).rstrip("/")}
    )
    msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.TEXT
    await ws.close()


async def test_session_cookie_is_secure_behind_an_https_proxy(console: Console) -> None:
    token = await _login_form(console.client)
    resp = await console.client.post(
        "/console/login",
        data={"username": "amy", "password": PASSWORD, "csrf_token": token},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert resp.status == 302
    assert resp.cookies[SESSION_COOKIE]["secure"]
