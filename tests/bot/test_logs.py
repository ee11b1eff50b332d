"""Log lines cannot be forged: control characters in anything a client sent are escaped, in the
access log (a real aiohttp server with the gateway's access logger) and in structlog events."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import aiohttp
import pytest
import structlog
from aiohttp import web

from bot.__main__ import PathOnlyAccessLog
from bot.logs import SafeFormatter, configure_logging
from tests.helpers import listen


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("INFO", "console", stream=stream)
    try:
        yield stream
    finally:
        root = logging.getLogger()
        root.handlers = [h for h in root.handlers if not isinstance(h.formatter, SafeFormatter)]
        structlog.reset_defaults()


async def test_a_crlf_in_the_path_does_not_start_a_new_log_line(
    log_stream: io.StringIO, http: aiohttp.ClientSession
) -> None:
    app = web.Application()
    runner = web.AppRunner(app, access_log_class=PathOnlyAccessLog)
    await runner.setup()
    port = await listen(runner)
    try:
        forged = "/x%0d%0a127.0.0.1%20%22GET%20/admin%22%20200"
        async with http.get(f"http://127.0.0.1:{port}{forged}") as resp:
            assert resp.status == 404
    finally:
        await runner.cleanup()
    lines = [line for line in log_stream.getvalue().splitlines() if line]
    access = [line for line in lines if "GET" in line]
    assert len(access) == 1, lines
    assert "/x\\x0d\\x0a127.0.0.1" in access[0]
    assert not any(line.startswith('127.0.0.1 "GET /admin"') for line in lines)


def test_structlog_values_are_escaped_and_redacted(log_stream: io.StringIO) -> None:
    structlog.get_logger("test").warning(
        "bad frame", client_id="abc\r\nFORGED line \x1b[31m", card="4111 1111 1111 1111"
    )
    out = log_stream.getvalue()
    assert out.count("\n") == 1, out  # one line: the CR LF did not start another
    assert "\r" not in out and "\x1b" not in out  # and no raw control character got through
    assert "x0d" in out and "x0a" in out and "x1b[31m" in out  # escaped, still readable
    assert "4111" not in out and "[card]" in out


def test_a_traceback_keeps_its_lines(log_stream: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("test").exception("failed with\r\ninjected")
    out = log_stream.getvalue()
    assert "failed with\\x0d\\x0ainjected" in out
    assert "Traceback (most recent call last):\n" in out
