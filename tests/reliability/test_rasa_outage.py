"""Rasa stops in the middle of a conversation: the customer is told once, their messages wait,
after ``rasa.offer_human_after_seconds`` they are offered a person, and once Rasa is back the bot
answers the waiting messages in order. Nothing is lost or answered twice.

The gateway is a subprocess; Rasa is a real Rasa server with the gateway tests' own fixture bot
(tests/fixture_bot), behind a proxy that can be stopped like a process (connections refused) and
started again on the same port.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.core.state import ConversationState
from bot.core.types import HANDOFF_PAYLOAD
from scripts import devctl
from tests.reliability.support import (
    Database,
    GatewayProcess,
    Gateways,
    RasaSwitch,
    WidgetClient,
    assert_gap_free,
    inbound,
    logged_in,
    order_numbers,
    outbound,
    wait_until,
    write_gateway_config,
)

pytestmark = pytest.mark.e2e

OFFER_AFTER = 2.0  # rasa.offer_human_after_seconds
TOLD = "having a technical problem"
OFFER = "Would you like to talk to a person instead?"


@pytest.fixture
async def rasa_switch(fixture_stack: devctl.Stack) -> AsyncIterator[RasaSwitch]:
    switch = RasaSwitch(fixture_stack.rasa_url)
    await switch.start()
    try:
        yield switch
    finally:
        await switch.close()


@pytest.fixture
async def gateway(
    rasa_switch: RasaSwitch,
    fixture_stack: devctl.Stack,
    database: Database,
    gateways: Gateways,
    tmp_path: Path,
) -> GatewayProcess:
    config = write_gateway_config(
        tmp_path / "gateway.yml",
        rasa={"retry_seconds": 0.3, "offer_human_after_seconds": OFFER_AFTER},
    )
    return await gateways.start(
        "gw",
        config,
        DATABASE_URL=database.url,
        RASA_URL=rasa_switch.url,
        RASA_TOKEN=fixture_stack.token,
    )


async def test_messages_wait_while_rasa_is_stopped_and_are_answered_in_order(
    gateway: GatewayProcess,
    rasa_switch: RasaSwitch,
    database: Database,
    http: aiohttp.ClientSession,
) -> None:
    customer = await WidgetClient(gateway.url, http).start()
    try:
        await customer.send("where is my order 1001?")
        await customer.wait_for_text("bot", "Order 1001")

        await rasa_switch.stop()
        waiting = ["where is my order 1005?", "where is my order 1001?", "where is my order 1005?"]
        for text in waiting:
            await customer.send(text)
            await asyncio.sleep(0.3)
        await customer.wait_all_acked()
        await customer.wait_for_text("system", TOLD)
        offer = await customer.wait_for_text("system", OFFER, timeout=OFFER_AFTER + 10)
        assert [b["payload"] for b in offer["buttons"]] == [HANDOFF_PAYLOAD]
        await asyncio.sleep(1.5)  # several more failed retries: still told once, offered once

        cid = customer.conversation_id or ""
        messages = await database.messages(cid)
        async with database.store() as store:
            conversation = await store.conversation(cid)
        assert conversation is not None
        answered, first_waiting = inbound(messages)[:2]
        assert conversation.bot_cursor == answered.seq, "the waiting messages wait"
        assert conversation.state is ConversationState.BOT
        (offer_row,) = [m for m in messages if OFFER in m.text]
        waited = (offer_row.created_at - first_waiting.created_at).total_seconds()
        assert waited >= OFFER_AFTER

        await rasa_switch.start()
        await wait_until(
            lambda: len(order_numbers(customer.texts("bot"))) == 4,
            30,
            "answers to the waiting messages",
            describe=lambda: str(customer.texts()),
        )
        await asyncio.sleep(1.0)  # room for a doubled answer to show up

        messages = await database.messages(cid)
        assert_gap_free(messages)
        assert [m.text for m in inbound(messages)] == ["where is my order 1001?", *waiting]
        assert order_numbers([m.text for m in outbound(messages, "bot")]) == [
            "1001",
            "1005",
            "1001",
            "1005",
        ]
        system = [m.text for m in outbound(messages, "system")]
        assert sum(TOLD in t for t in system) == 1, system
        assert sum(OFFER in t for t in system) == 1, system
        # Each waiting message reached Rasa once, in the order it was stored.
        assert rasa_switch.forwarded == ["where is my order 1001?", *waiting]
        # The customer saw exactly what is stored, each message once.
        assert customer.texts("bot") == [m.text for m in outbound(messages, "bot")]
        assert customer.texts("system") == system
        assert not customer.stats.anomalies and not customer.errors
    finally:
        await customer.close()


async def test_taking_the_offer_of_a_person_while_rasa_is_stopped(
    gateway: GatewayProcess,
    rasa_switch: RasaSwitch,
    database: Database,
    http: aiohttp.ClientSession,
) -> None:
    await database.add_agent("alex", "Alex")
    customer = await WidgetClient(gateway.url, http).start()
    agent = await logged_in(gateway.url, "alex")
    try:
        await customer.send("where is my order 1001?")
        await customer.wait_for_text("bot", "Order 1001")
        await rasa_switch.stop()
        await customer.send("my order 1005 never arrived")
        offer = await customer.wait_for_text("system", OFFER, timeout=OFFER_AFTER + 10)
        (button,) = offer["buttons"]
        await customer.send(button["title"], payload=button["payload"])

        await customer.wait_for_text("system", "number 1 in the queue")
        cid = customer.conversation_id or ""
        status, queue = await agent.api("GET", "/queue")
        assert status == 200
        (item,) = [i for i in queue["items"] if i["conversation_id"] == cid]
        assert item["state"] == "queued" and item["position"] == 1

        await rasa_switch.start()
        await asyncio.sleep(1.5)  # retries would reach Rasa now, if anything were still pending
        assert rasa_switch.forwarded == ["where is my order 1001?"], "people have it now"
        messages = await database.messages(cid)
        assert_gap_free(messages)
        assert [m.text for m in inbound(messages)] == [
            "where is my order 1001?",
            "my order 1005 never arrived",
            button["title"],
        ]
        async with database.store() as store:
            conversation = await store.conversation(cid)
        assert conversation is not None
        assert conversation.state is ConversationState.QUEUED
        assert conversation.bot_cursor == inbound(messages)[-1].seq
        assert sum(TOLD in t for t in customer.texts("system")) == 1
        assert not customer.stats.anomalies and not customer.errors
    finally:
        await agent.close()
        await customer.close()
