"""The gateway's own handoff policy over real bot turns, with a scripted Rasa that speaks the
gateway channel: the NLU of each turn comes with the answer, and the rules that look back over
several turns (N fallbacks in a row, a low-confidence streak) see the right ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.appkeys import SERVICE, STORE
from bot.core.state import ConversationState
from handoff.start import why_a_person
from tests.fakes.rasa import ScriptedRasa
from tests.gateway_fixtures import Gateway, gateway_settings, running_gateway
from tests.helpers import CustomerClient

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


SYSTEM_LINES: dict[str, list[str]] = {}


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
    SYSTEM_LINES[conversation.id] = [
        m.text for m in await store.messages(conversation.id) if m.sender_kind.value == "system"
    ]
    return conversation, await store.current_handoff(conversation.id)


async def test_two_fallbacks_in_a_row_hand_off(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    gw, rasa = gateway
    conversation, handoff = await say_all(gw, http, ["hello", "asdf", "qwer"])
    assert conversation.state is ConversationState.QUEUED
    assert handoff is not None and handoff.reason == "consecutive_fallbacks"
    # The customer is told why, not only where they stand in the queue.
    (line,) = SYSTEM_LINES[conversation.id]
    assert line.startswith("I haven't been able to understand your last few messages, so ")
    assert "number 1 in the queue" in line
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
    assert SYSTEM_LINES[conversation.id][0].startswith("I'm not sure I've understood you")


def test_why_a_person_explains_only_the_gateways_own_decisions() -> None:
    assert why_a_person("keyword:lawyer").startswith("This sounds like something a person")
    assert why_a_person("intent:complaint").startswith("I'm sorry about this.")
    assert why_a_person("explicit_request").startswith("You asked for a person")
    # The bot's own reasons: its reply already said why.
    assert why_a_person("customer_request") == ""
    assert why_a_person("troubleshooting_failed") == ""
