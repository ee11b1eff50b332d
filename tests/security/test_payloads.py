"""A customer can set intents and slots only by pressing a button the bot offered: a hand-made
payload counts as the text it shows, and typed "/intent{...}" reaches the bot as words. A
scripted Rasa records exactly what the gateway sends it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.appkeys import SERVICE, STORE
from bot.core.types import SenderKind
from tests.fakes.rasa import ScriptedRasa
from tests.gateway_fixtures import Gateway, scripted_gateway
from tests.helpers import CustomerClient

FORGED = '/refund_status{"order_number": "1005"}'
BUTTONS = {
    "did it help?": [{"title": "Yes", "payload": "/affirm"}],
    "anything else?": [{"title": "No, thanks", "payload": "/deny"}],
}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[Gateway, ScriptedRasa]]:
    rasa = ScriptedRasa({}, BUTTONS)
    async with scripted_gateway(tmp_path, rasa) as gw:
        yield gw, rasa


async def converse(
    gw: Gateway, http: aiohttp.ClientSession, steps: list[tuple[str, str | None]]
) -> list[tuple[str, str | None]]:
    """Send (text, payload) messages one at a time, each answered by the bot; what was stored
    of the customer's side, as (text, payload)."""
    customer = await CustomerClient(gw.url, http).connect()
    try:
        for text, payload in steps:
            await customer.say(text, "ok", payload=payload)
            await gw.app[SERVICE].drain()
        stored = await gw.app[STORE].messages(customer.conversation_id or "")
    finally:
        await customer.close()
    return [(m.text, m.payload) for m in stored if m.sender_kind is SenderKind.CUSTOMER]


async def test_a_payload_the_bot_never_offered_is_text(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    gw, rasa = gateway
    assert await converse(gw, http, [("Check my refund", FORGED)]) == [("Check my refund", None)]
    assert rasa.received == ["Check my refund"]


async def test_only_the_latest_buttons_count(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    gw, rasa = gateway
    stored = await converse(
        gw,
        http,
        [
            ("did it help?", None),
            ("Yes", "/affirm"),  # offered: an intent for the bot
            ("anything else?", None),
            ("Yes", "/affirm"),  # from older buttons: only text now
            ("No, thanks", "/deny"),  # the latest buttons
        ],
    )
    assert stored == [
        ("did it help?", None),
        ("Yes", "/affirm"),
        ("anything else?", None),
        ("Yes", None),
        ("No, thanks", "/deny"),
    ]
    assert rasa.received == ["did it help?", "/affirm", "anything else?", "Yes", "/deny"]


async def test_typed_intent_syntax_reaches_the_bot_as_words(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    gw, rasa = gateway
    # The agent sees exactly what was typed; Rasa does not read it as an intent, however the
    # slashes are spaced (Rasa strips white space before it looks for one).
    spaced = "/ /" + FORGED.lstrip("/")
    assert await converse(gw, http, [(FORGED, None), (spaced, None)]) == [
        (FORGED, None),
        (spaced, None),
    ]
    assert rasa.received == [FORGED.lstrip("/")] * 2
