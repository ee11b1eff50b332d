"""The whole handoff loop through the widget's websocket and the console, with the real bot."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.appkeys import BROKER, DESK, SERVICE, STORE
from handoff.auth import hash_password
from scripts import devctl
from tests.fakes import serve
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway
from tests.helpers import AgentClient, CustomerClient
from tests.helpers import forward as forward_to_rasa

pytestmark = pytest.mark.e2e

RESULTS = Path(__file__).resolve().parents[2] / "var" / "test-results"


@pytest.fixture
async def gateway(rasa_stack: devctl.Stack, tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = gateway_settings(tmp_path, rasa_stack.rasa_url, rasa_stack.token)
    async with running_gateway(settings) as gw:
        yield gw


def is_msg(sender: str, text: str = "") -> object:
    return lambda f: f.get("type") == "message" and f.get("sender") == sender and text in f["text"]


async def test_full_journey_troubleshoot_handoff_agent_resolve_rating(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    agent = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    await agent.open_socket()
    try:
        first = await customer.say("my speaker is too quiet", "volume-up")
        assert first["sender"] == "bot"
        did_it_help = await customer.wait_for(is_msg("bot", "Did that help?"))
        assert [b["payload"] for b in did_it_help["buttons"]] == ["/affirm", "/deny"]
        await customer.say("No, still a problem", "Night mode", payload="/deny")
        await customer.say("still too quiet", "restart")
        await customer.say("nope still the same", "connect you with one of our support team")

        mark = len(agent.events)
        t_trigger = time.perf_counter()
        queued = await customer.say("yes please", "number 1 in the queue")
        assert queued["sender"] == "system"
        seen = await agent.wait_event(
            lambda e: (
                e.get("type") == "queue"
                and any(i["conversation_id"] == customer.conversation_id for i in e["items"])
            ),
            after=mark,
        )
        handoff_to_console_ms = (seen["_at"] - t_trigger) * 1000

        status, queue = await agent.api("GET", "/queue")
        assert status == 200
        (item,) = [i for i in queue["items"] if i["conversation_id"] == customer.conversation_id]
        assert item["position"] == 1 and item["state"] == "queued"
        assert item["team"] == "tech_support"

        status, _ = await agent.api("POST", f"/conversations/{customer.conversation_id}/claim")
        assert status == 200
        joined = await customer.wait_for(lambda f: f.get("type") == "agent_joined")
        assert joined["name"] == "Sam"

        status, view = await agent.api("GET", f"/conversations/{customer.conversation_id}")
        assert status == 200
        packet = view["packet"]
        assert packet["version"] == 1
        assert packet["reason"] == "troubleshooting_failed"
        assert packet["source"] == "bot"
        assert len(packet["steps_tried"]) == 3
        assert "Turned off night mode and the volume limit in the app" in packet["steps_tried"]
        customer_turns = [t for t in packet["transcript"] if t["sender"] == "customer"]
        assert customer_turns[0]["text"] == "my speaker is too quiet"
        assert customer_turns[0]["intent"] == "troubleshoot_sound"
        assert customer_turns[0]["confidence"] > 0.5
        assert packet["slots"]["troubleshoot_topic"] == "sound"
        assert packet["summary"]

        # The customer keeps typing while a person is on it: it goes to the console, not the bot.
        mark = len(agent.events)
        await customer.send("it's the Aurora Speaker in the kitchen")
        live = await agent.wait_event(
            lambda e: (
                e.get("type") == "message"
                and e["conversation_id"] == customer.conversation_id
                and e["message"]["text"] == "it's the Aurora Speaker in the kitchen"
            ),
            after=mark,
        )
        assert live["message"]["sender"] == "customer"
        await asyncio.sleep(1.0)
        assert not [t for t in customer.texts("bot") if "Kitchen" in t]

        mark = len(customer.frames)
        t_reply = time.perf_counter()
        status, _ = await agent.api(
            "POST",
            f"/conversations/{customer.conversation_id}/reply",
            {"text": "Thanks! Let's update its firmware from the app."},
        )
        assert status == 200
        reply = await customer.wait_for(is_msg("agent", "update its firmware"), after=mark)
        reply_to_customer_ms = (reply["_at"] - t_reply) * 1000
        assert reply["sender_name"] == "Sam"

        status, _ = await agent.api(
            "POST", f"/conversations/{customer.conversation_id}/notes", {"text": "Firmware 2.1"}
        )
        assert status == 200

        status, _ = await agent.api("POST", f"/conversations/{customer.conversation_id}/resolve")
        assert status == 200
        rating_prompt = await customer.wait_for(is_msg("system", "rate this conversation"))
        assert [b["title"] for b in rating_prompt["buttons"]] == ["1", "2", "3", "4", "5"]
        await customer.say("5", "Thank you for your feedback", payload="csat:5")
        store = gateway.app[STORE]
        ratings = await store.csat_for(customer.conversation_id)
        assert [r.rating for r in ratings] == [5]

        # Back with the bot, which answers again: about an order only once the customer
        # proves it is theirs (the e-mail on it), and then remembers who they are.
        asked = await customer.say("where is my order 1001?", "e-mail address or the postcode")
        assert asked["sender"] == "bot"
        back = await customer.say("maya.patel@example.com", "Order 1001 (Aurora Speaker)")
        assert back["sender"] == "bot"
        assert "Thanks, Maya, that matches our records." in customer.texts("bot")
        conversation = await store.conversation(customer.conversation_id)
        assert conversation is not None
        verified = await store.customer(conversation.customer_id)
        assert verified is not None
        assert (verified.verified_id, verified.verified_by) == ("1", "second_factor")
        assert verified.display_name == "Maya Patel" and not verified.vip
        handoffs = await store.handoffs_for_conversation(customer.conversation_id)
        assert handoffs[0].first_agent_reply_at is not None and handoffs[0].resolved_at
    finally:
        await customer.close()
        await agent.close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "journey-timings.json").write_text(
        json.dumps(
            {
                "handoff_trigger_to_console_ms": round(handoff_to_console_ms, 1),
                "agent_reply_to_customer_ms": round(reply_to_customer_ms, 1),
            },
            indent=2,
        )
    )
    print(
        f"handoff trigger -> console: {handoff_to_console_ms:.1f} ms; "
        f"agent reply -> customer: {reply_to_customer_ms:.1f} ms"
    )


async def test_queue_positions_with_three_waiting_customers(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customers = [await CustomerClient(gateway.url, http).connect() for _ in range(3)]
    agent = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    try:
        # Nobody of the team has a console open: the wait cannot be known, and is not guessed.
        await customers[0].say("I want to talk to a person", "can't estimate the wait")
        sam = await gateway.app[STORE].agent_by_username("sam")
        assert sam is not None
        await gateway.app[BROKER].set_presence(f"agent:{sam.id}", 60)  # Sam's console is open
        for n, customer in enumerate(customers[1:], start=2):
            await customer.say("I want to talk to a person", f"number {n} in the queue")
        status, queue = await agent.api("GET", "/queue")
        assert status == 200
        assert [i["conversation_id"] for i in queue["items"]] == [
            c.conversation_id for c in customers
        ]
        assert [i["position"] for i in queue["items"]] == [1, 2, 3]
        marks = [len(c.frames) for c in customers]
        status, _ = await agent.api("POST", f"/conversations/{customers[0].conversation_id}/claim")
        assert status == 200
        for customer, mark, expected in zip(customers[1:], marks[1:], [1, 2], strict=True):
            update = await customer.wait_for(
                lambda f, p=expected: f.get("type") == "queue" and f["position"] == p, after=mark
            )
            assert update["eta_seconds"] > 0
            assert update["text"] == (
                f"You're number {expected} in the queue for a person (about "
                f"{round(update['eta_seconds'] / 60)} minutes)."
            )
    finally:
        for customer in customers:
            await customer.close()
        await agent.close()


async def test_two_agents_claim_at_once_exactly_one_wins(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    store = gateway.app[STORE]
    await store.add_agent("kim", "Kim", hash_password(AGENT_PASSWORD))
    customer = await CustomerClient(gateway.url, http).connect()
    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        await customer.say("get me a real agent", "in the queue")
        path = f"/conversations/{customer.conversation_id}/claim"
        results = await asyncio.gather(sam.api("POST", path), kim.api("POST", path))
        statuses = sorted(status for status, _ in results)
        assert statuses == [200, 409]
        loser = next(body for status, body in results if status == 409)
        assert "took this conversation" in loser["message"]
    finally:
        await customer.close()
        await sam.close()
        await kim.close()


@pytest.fixture
async def slow_rasa(fixture_stack: devctl.Stack) -> AsyncIterator[str]:
    """A proxy in front of a real Rasa (the gateway tests' fixture bot: this tests the
    gateway, not the shipped bot) that holds each bot turn for 1.5 s."""

    async def forward(request: web.Request) -> web.Response:
        if request.path.startswith("/webhooks/"):  # the gateway channel or the REST one
            await asyncio.sleep(1.5)
        return await forward_to_rasa(request, fixture_stack.rasa_url)

    runner, url = await serve("/{tail:.*}", forward)
    yield url
    await runner.cleanup()


async def test_stale_bot_reply_is_dropped_after_an_agent_takes_over(
    slow_rasa: str, fixture_stack: devctl.Stack, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    settings = gateway_settings(tmp_path, slow_rasa, fixture_stack.token)
    async with running_gateway(settings) as gw:
        customer = await CustomerClient(gw.url, http).connect()
        try:
            await customer.send("where is my order 1001?")
            await customer.wait_for(lambda f: f.get("type") == "ack")
            service, store = gw.app[SERVICE], gw.app[STORE]
            sam = await store.agent_by_username("sam")
            assert sam is not None
            # While Rasa is still thinking, an agent takes the conversation over.
            await asyncio.sleep(0.3)
            await gw.app[DESK].take_over(customer.conversation_id, sam)
            await customer.wait_for(lambda f: f.get("type") == "agent_joined")
            await service.drain()
            stored = await store.messages(customer.conversation_id)
            assert not [m for m in stored if m.sender_kind.value == "bot"]
            assert not [t for t in customer.texts("bot")]
            conversation = await store.conversation(customer.conversation_id)
            assert conversation is not None and conversation.state.value == "assigned"
            assert conversation.bot_cursor == 1  # the message counts as handled, once
        finally:
            await customer.close()
