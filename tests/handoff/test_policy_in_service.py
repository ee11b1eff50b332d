"""The gateway's own handoff policy over real bot turns, with a scripted Rasa that speaks the
gateway channel: the NLU of each turn comes with the answer, and the rules that look back over
several turns (N fallbacks in a row, a low-confidence streak) see the right ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.appkeys import SERVICE, STORE
from bot.core.state import ConversationState
from bot.rasa_client import GATEWAY_WEBHOOK
from tests.gateway_fixtures import Gateway, gateway_settings, running_gateway
from tests.helpers import CustomerClient


class ScriptedRasa:
    """Answers every message with "ok"; the NLU is looked up by the message text."""

    def __init__(self, nlu: dict[str, tuple[str, float]]) -> None:
        self.nlu = nlu
        self.tracker_reads = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        intent, confidence = self.nlu.get(body["message"], ("chitchat", 0.99))
        return web.json_response(
            {
                "messages": [{"recipient_id": body["sender"], "text": "ok"}],
                "nlu": {"intent": intent, "confidence": confidence},
                "paused": False,
            }
        )

    async def _tracker(self, request: web.Request) -> web.Response:
        self.tracker_reads += 1
        return web.json_response({"slots": {}, "latest_message": {}, "paused": False})

    async def _events(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(GATEWAY_WEBHOOK, self._webhook)
        app.router.add_get("/conversations/{sender}/tracker", self._tracker)
        app.router.add_post("/conversations/{sender}/tracker/events", self._events)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


NLU = {
    "asdf": ("nlu_fallback", 0.3),
    "qwer": ("nlu_fallback", 0.2),
    "hmm maybe": ("order_status", 0.41),
    "not sure": ("refund_status", 0.35),
    "perhaps": ("greet", 0.44),
}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[Gateway, ScriptedRasa]]:
    rasa = ScriptedRasa(NLU)
    await rasa.start()
    settings = gateway_settings(tmp_path, rasa.url, None)
    try:
        async with running_gateway(settings) as gw:
            yield gw, rasa
    finally:
        await rasa.close()


async def say_all(gw: Gateway, http: aiohttp.ClientSession, texts: list[str]) -> Any:
    customer = await CustomerClient(gw.url, http).connect()
    try:
        for text in texts:
            await customer.say(text, "")
            await gw.app[SERVICE].drain()
    finally:
        await customer.close()
    store = gw.app[STORE]
    conversation = await store.conversation(customer.conversation_id)
    assert conversation is not None
    return conversation, await store.current_handoff(conversation.id)


async def test_two_fallbacks_in_a_row_hand_off(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    gw, rasa = gateway
    conversation, handoff = await say_all(gw, http, ["hello", "asdf", "qwer"])
    assert conversation.state is ConversationState.QUEUED
    assert handoff is not None and handoff.reason == "consecutive_fallbacks"
    # NLU came with the answers; the one tracker read is for the packet's slots.
    assert rasa.tracker_reads == 1
    intents = [
        m.intent
        for m in await gw.app[STORE].messages(conversation.id)
        if m.sender_kind.value == "customer"
    ]
    assert intents == ["chitchat", "nlu_fallback", "nlu_fallback"]


async def test_fallbacks_that_are_not_in_a_row_do_not(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    gw, rasa = gateway
    conversation, handoff = await say_all(gw, http, ["asdf", "hello", "qwer", "hello"])
    assert conversation.state is ConversationState.BOT and handoff is None
    assert rasa.tracker_reads == 0


async def test_a_low_confidence_streak_hands_off(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    gw, _ = gateway
    conversation, handoff = await say_all(gw, http, ["hmm maybe", "not sure"])
    assert conversation.state is ConversationState.BOT and handoff is None  # 2 of 3
    conversation, handoff = await say_all(gw, http, ["hmm maybe", "not sure", "perhaps"])
    assert conversation.state is ConversationState.QUEUED
    assert handoff is not None and handoff.reason == "low_confidence"
