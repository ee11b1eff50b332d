"""``python -m bot chat``: a terminal customer of the widget protocol, run as a real process
against a real gateway (the bot scripted)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.rasa import ScriptedRasa
from tests.gateway_fixtures import Gateway, scripted_gateway
from tests.helpers import dead_port

ROOT = Path(__file__).resolve().parents[2]
BUTTONS = {"did it help?": [{"title": "Yes", "payload": "/affirm"}]}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[Gateway, ScriptedRasa]]:
    rasa = ScriptedRasa({"a person please": ("request_human", 0.99)}, BUTTONS)
    async with scripted_gateway(tmp_path, rasa) as gw:
        yield gw, rasa


async def chat(url: str, typed: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "chat",
        "--url",
        url,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(typed.encode()), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_designer_chats_presses_a_button_and_reaches_the_queue(
    gateway: tuple[Gateway, ScriptedRasa],
) -> None:
    gw, rasa = gateway
    code, out, err = await chat(gw.url, "did it help?\n1\na person please\n/quit\n")
    assert code == 0, err
    assert f"Connected to {gw.url}" in out
    assert "bot: ok" in out and "    [1] Yes" in out
    assert "in the queue" in out  # the gateway's notice and the queue frame
    # The number pressed the button: its payload reached the bot, not the digit.
    assert rasa.received[:2] == ["did it help?", "/affirm"]


async def test_an_unreachable_gateway_is_a_clear_error() -> None:
    code, out, err = await chat(f"http://127.0.0.1:{dead_port()}", "hello\n")
    assert code == 2 and out == ""
    assert "cannot reach the gateway" in err and "make run" in err
