"""The intent stored with a customer's message is that message's own, also when Rasa's core
fallback reverted it (then the tracker's latest_message is the message before). Here through the
REST channel, a Rasa without the gateway channel; the gateway channel's side is in
tests/actions/test_rasa_gateway_channel_stores.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.appkeys import SERVICE, STORE
from bot.core.types import SenderKind
from bot.pipeline.bot_turn import newest_user_parse
from bot.rasa_client import REST_WEBHOOK
from tests.gateway_fixtures import Gateway, gateway_settings, running_gateway
from tests.helpers import CustomerClient, listen

EARLIER = {"intent": {"name": "greet", "confidence": 0.99}, "text": "hi"}
REVERTED = {"intent": {"name": "inform", "confidence": 0.67}, "text": "is 1008 on its way?"}
TRACKER = {
    "slots": {},
    "paused": False,
    "latest_message": EARLIER,  # what Rasa shows after the revert
    "events": [
        {"event": "user", "text": "hi", "parse_data": EARLIER},
        {"event": "action", "name": "utter_greet"},
        {"event": "user", "text": "is 1008 on its way?", "parse_data": REVERTED},
        {"event": "action", "name": "action_default_fallback"},
        {"event": "rewind"},
    ],
}


def test_the_newest_user_event_is_the_message_even_when_reverted() -> None:
    assert newest_user_parse(TRACKER) == newest_user_parse({"events": TRACKER["events"]})
    parsed = newest_user_parse(TRACKER)
    assert (parsed.intent, parsed.confidence) == ("inform", 0.67)
    # Without events (an old Rasa), latest_message is all there is.
    assert newest_user_parse({"latest_message": EARLIER}).intent == "greet"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[Gateway, list[str]]]:
    rasa = web.Application()
    asked_events: list[str] = []

    async def rest(_: web.Request) -> web.Response:
        return web.json_response([{"recipient_id": "x", "text": "Sorry, I didn't get that."}])

    async def tracker(request: web.Request) -> web.Response:
        asked_events.append(request.query.get("include_events", ""))
        return web.json_response(TRACKER)

    async def events(_: web.Request) -> web.Response:
        return web.json_response({})

    rasa.router.add_post(REST_WEBHOOK, rest)
    rasa.router.add_get("/conversations/{sender}/tracker", tracker)
    rasa.router.add_post("/conversations/{sender}/tracker/events", events)
    runner = web.AppRunner(rasa)
    await runner.setup()
    port = await listen(runner)
    try:
        settings = gateway_settings(tmp_path, f"http://127.0.0.1:{port}", None)
        async with running_gateway(settings) as gw:
            yield gw, asked_events
    finally:
        await runner.cleanup()


async def test_the_stored_intent_is_the_reverted_messages_own(
    gateway: tuple[Gateway, list[str]], http: aiohttp.ClientSession
) -> None:
    gw, asked = gateway
    customer = await CustomerClient(gw.url, http).connect()
    try:
        await customer.say("is 1008 on its way?", "didn't get that")
        await gw.app[SERVICE].drain()
        stored = await gw.app[STORE].messages(customer.conversation_id or "")
    finally:
        await customer.close()
    (message,) = [m for m in stored if m.sender_kind is SenderKind.CUSTOMER]
    assert (message.intent, message.confidence) == ("inform", 0.67)
    assert "ALL" in asked  # read with its events
