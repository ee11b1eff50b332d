"""Slow clients do not hold the gateway's connections: headers and bodies have deadlines, and a
body cut off halfway is a short log line, not a traceback. Raw sockets play the slow client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.gateway_fixtures import Gateway, gateway_settings, running_gateway
from tests.helpers import dead_port

# The trickling clients below would keep going for TRICKLE_SECONDS; the deadlines are far
# shorter, so a connection still open at the end means there is no deadline.
IDLE_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
TRICKLE_SECONDS = 12.0


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = gateway_settings(
        tmp_path,
        f"http://127.0.0.1:{dead_port()}",
        None,
        http={"idle_timeout_seconds": IDLE_TIMEOUT, "body_timeout_seconds": BODY_TIMEOUT},
    )
    async with running_gateway(settings) as gw:
        yield gw


async def open_raw(gw: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = int(gw.url.rsplit(":", 1)[1])
    return await asyncio.open_connection("127.0.0.1", port)


async def trickle(writer: asyncio.StreamWriter, chunks: list[bytes], pause: float) -> bool:
    """Send the chunks slowly; False as soon as the server has closed the connection."""
    for chunk in chunks:
        try:
            writer.write(chunk)
            await writer.drain()
        except ConnectionError:
            return False
        await asyncio.sleep(pause)
    return True


async def test_headers_that_trickle_in_are_cut_off(gateway: Gateway) -> None:
    reader, writer = await open_raw(gateway)
    headers = [b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n"]
    headers += [f"X-Slow-{n}: y\r\n".encode() for n in range(int(TRICKLE_SECONDS / 0.5))]
    sender = asyncio.create_task(trickle(writer, headers, 0.5))
    # The server closes the connection: the read ends (EOF) long before the trickle would.
    data = await asyncio.wait_for(reader.read(), timeout=TRICKLE_SECONDS - 2)
    assert b"200 OK" not in data
    sender.cancel()
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed(gateway: Gateway) -> None:
    reader, writer = await open_raw(gateway)
    data = await asyncio.wait_for(reader.read(), timeout=TRICKLE_SECONDS - 2)
    assert data == b""
    writer.close()


async def test_a_body_that_trickles_in_gets_a_408(gateway: Gateway) -> None:
    reader, writer = await open_raw(gateway)
    body = b'{"token": null}' + b" " * 200
    head = (
        b"POST /webchat/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    writer.write(head + body[:5])
    await writer.drain()
    sender = asyncio.create_task(
        trickle(writer, [body[i : i + 1] for i in range(5, 5 + int(TRICKLE_SECONDS / 0.5))], 0.5)
    )
    status_line = await asyncio.wait_for(reader.readline(), timeout=TRICKLE_SECONDS - 2)
    assert status_line.startswith(b"HTTP/1.1 408"), status_line
    rest = await asyncio.wait_for(reader.read(4096), timeout=5)
    assert b"request_timeout" in rest
    sender.cancel()
    writer.close()


async def test_a_body_cut_off_halfway_is_a_short_log_line_and_the_gateway_carries_on(
    gateway: Gateway, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _reader, writer = await open_raw(gateway)
    writer.write(
        b"POST /webchat/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 500\r\n\r\n{"tok'
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await asyncio.sleep(0.3)
    async with http.post(f"{gateway.url}/webchat/session", json={"token": None}) as resp:
        assert resp.status == 200  # still serving
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert not any(r.exc_info for r in caplog.records)


async def test_a_multipart_form_is_still_read_by_its_handler(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("username", "kim")
    form.add_field("password", "not-the-password")
    form.add_field("csrf_token", "forged")
    async with http.post(f"{gateway.url}/console/login", data=form) as resp:
        # Parsed, then refused for its CSRF token: not a 500.
        assert resp.status == 403, await resp.text()
