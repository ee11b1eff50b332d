"""Trust and safety on the public side (docs/security.md): bad input gets an error frame or a
400 and never closes the visitor's socket or writes a traceback; card numbers never reach the
record; every response carries the security headers and no version banner; /healthz says only
up or down. A real gateway app on a real SQLite file; Rasa is a closed port (not needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.appkeys import STORE
from bot.core.types import SenderKind, StoredMessage
from bot.http_headers import CONTENT_SECURITY_POLICY
from connectors.webchat.demo_shop import SHOP_PAGE_CSP
from tests.gateway_fixtures import Gateway, gateway_settings, running_gateway
from tests.helpers import CustomerClient, dead_port

DEEP = "[" * 20_000 + "]" * 20_000


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = gateway_settings(tmp_path, f"http://127.0.0.1:{dead_port()}", None)
    async with running_gateway(settings) as gw:
        yield gw


async def _customer_messages(gw: Gateway, customer: CustomerClient) -> list[StoredMessage]:
    stored = await gw.app[STORE].messages(customer.conversation_id or "")
    return [m for m in stored if m.sender_kind is SenderKind.CUSTOMER]


async def _still_open(customer: CustomerClient) -> None:
    assert customer.ws is not None and not customer.ws.closed
    mark = len(customer.frames)
    await customer.ws.send_json({"type": "ping"})
    await customer.wait_for(lambda f: f.get("type") == "pong", timeout=5, after=mark)


async def _error_after(customer: CustomerClient, mark: int) -> dict[str, object]:
    return await customer.wait_for(lambda f: f.get("type") == "error", timeout=5, after=mark)


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "sync", "after_seq": True},
        {"type": "sync", "after_seq": 2**63},
        {"type": "sync", "after_seq": -1},
        {"type": "message", "client_id": "c1", "text": "hi \ud800 there"},
        {"type": "message", "client_id": "\ud800", "text": "hello"},
        {"type": "message", "client_id": "c2", "text": "hello", "payload": "\udfff"},
        {"type": "message", "client_id": "c3", "text": ["not", "text"]},
        {"type": "message", "client_id": "c4", "text": "nul \x00 byte"},
    ],
    ids=[
        "bool-seq",
        "huge-seq",
        "negative-seq",
        "surrogate-text",
        "surrogate-id",
        "surrogate-payload",
        "list-text",
        "nul-text",
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(
    gateway: Gateway,
    http: aiohttp.ClientSession,
    frame: dict[str, object],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        mark = len(customer.frames)
        assert customer.ws is not None
        await customer.ws.send_json(frame)
        error = await _error_after(customer, mark)
        assert error["code"] == "bad_request", error
        await _still_open(customer)
        assert await gateway.app[STORE].messages(customer.conversation_id or "") == []
    finally:
        await customer.close()
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"
    assert "Traceback" not in capsys.readouterr().out


async def test_json_nested_20000_deep_is_refused_calmly(
    gateway: Gateway, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        assert customer.ws is not None
        mark = len(customer.frames)
        await customer.ws.send_str(DEEP)
        assert (await _error_after(customer, mark))["code"] == "bad_request"
        await _still_open(customer)
    finally:
        await customer.close()
    async with http.post(
        f"{gateway.url}/webchat/session", data=DEEP, headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
        assert "JSON" in (await resp.json())["message"]
    assert not [r for r in caplog.records if r.exc_info]


async def test_card_numbers_are_masked_before_they_are_stored(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.send("my card is 4111 1111 1111 1111, order 1002, mail a@b.example")
        await customer.wait_for(lambda f: f.get("type") == "ack")
        echoed = await customer.wait_for(lambda f: f.get("sender") == "customer")
        (stored,) = await _customer_messages(gateway, customer)
    finally:
        await customer.close()
    # Luhn-valid card numbers always; order numbers stay; e-mails stay unless configured.
    assert stored.text == "my card is [card], order 1002, mail a@b.example"
    assert echoed["text"] == stored.text
    assert "4111" not in str(echoed)


async def test_e_mails_and_phones_are_masked_when_configured(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    settings = gateway_settings(
        tmp_path,
        f"http://127.0.0.1:{dead_port()}",
        None,
        privacy={"mask_emails": True, "mask_phones": True},
    )
    async with running_gateway(settings) as gw:
        customer = await CustomerClient(gw.url, http).connect()
        try:
            await customer.send("reach me at a@b.example or +44 20 7946 0958 about order 1002")
            await customer.wait_for(lambda f: f.get("type") == "ack")
            (stored,) = await _customer_messages(gw, customer)
        finally:
            await customer.close()
    assert stored.text == "reach me at [email] or [phone] about order 1002"


@pytest.mark.parametrize("path", ["/", "/widget.js", "/widget.css", "/demo.js", "/healthz"])
async def test_every_route_has_security_headers_and_no_banner(
    gateway: Gateway, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.get(f"{gateway.url}{path}") as resp:
        assert resp.status == 200
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Server"] == "csbot"
        if resp.content_type == "text/html":
            # The demo shop differs in one place: pictures from https addresses (a bot's image
            # responses); scripts, styles, frames and the rest are as strict as everywhere.
            expected = SHOP_PAGE_CSP if path == "/" else CONTENT_SECURITY_POLICY
            assert resp.headers["Content-Security-Policy"] == expected
            assert ("img-src 'self' data: https:" in expected) == (path == "/")
            assert resp.headers["X-Frame-Options"] == "DENY"
            # The CSP forbids inline script: the page must have none.
            assert "<script>" not in await resp.text()


async def test_not_found_pages_have_the_headers_too(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway.url}/nope") as resp:
        assert resp.status == 404
        assert resp.headers["Server"] == "csbot"
        assert "aiohttp" not in resp.headers["Server"]


async def test_public_health_says_only_up_or_down(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway.url}/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}
