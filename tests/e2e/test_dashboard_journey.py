"""The dashboard's figures from real conversations: the fixture bot (a real Rasa), web chat
customers and an agent, then every figure of the day read from the dashboard API.

Ann only greets the bot (contained). Ben asks about order 1008 and then for a person; he tells
the agent the order number again (the packet had it: the customer-repeated rate), is resolved,
rates 4, and asks for a person again (a returning customer: his first resolve is not
first-contact, once its window is over). Cy asks for a person and is resolved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.appkeys import DESK, SERVICE, STORE
from handoff.reports import figures
from scripts import devctl
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway
from tests.helpers import AgentClient, CustomerClient

pytestmark = pytest.mark.e2e


@pytest.fixture
async def gateway(tmp_path: Path, fixture_stack: devctl.Stack) -> AsyncIterator[Gateway]:
    settings = gateway_settings(tmp_path, fixture_stack.rasa_url, fixture_stack.token)
    async with running_gateway(settings) as gw:
        yield gw


async def test_every_figure_from_real_conversations(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    store, desk, service = gateway.app[STORE], gateway.app[DESK], gateway.app[SERVICE]
    sam = await store.agent_by_username("sam")
    assert sam is not None
    ann = await CustomerClient(gateway.url, http).connect()
    ben = await CustomerClient(gateway.url, http).connect()
    cy = await CustomerClient(gateway.url, http).connect()
    try:
        await ann.say("hello", "Hello from the fixture bot.")
        await ben.say("is 1008 on its way", "Order 1008 is on its way.")
        await ben.say("talk to a human", "connecting you to a person")
        await cy.say("talk to a human", "connecting you to a person")
        await service.drain()
        for customer in (ben, cy):
            await desk.claim(customer.conversation_id or "", sam)
        mark = len(ben.frames)
        await ben.send("it's about order 1008, as I said")
        await ben.wait_for(lambda f: f.get("type") == "ack", after=mark)
        await service.drain()
        await desk.resolve(ben.conversation_id or "", sam, "order_status", True)
        await desk.resolve(cy.conversation_id or "", sam, "other", False)
        await ben.wait_for(lambda f: f.get("payload") == "csat_request", after=mark)
        mark = len(ben.frames)
        await ben.send("4", payload="csat:4")
        await ben.wait_for(lambda f: "Thank you for your feedback" in f.get("text", ""), after=mark)
        await ben.say("talk to a human", "connecting you to a person")
        await service.drain()
    finally:
        for customer in (ann, ben, cy):
            await customer.close()

    agent = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    try:
        today = date.today().isoformat()
        status, report = await agent.api("GET", f"/dashboard?from={today}&to={today}")
    finally:
        await agent.close()
    assert status == 200
    p = report["period"]
    assert (p["conversations"], p["contained"], p["containment"]) == (3, 1, 0.3333)
    assert (p["handoffs"], p["handoff_rate"], p["resolved"]) == (3, 1.0, 2)
    assert p["handoffs_by_reason"] == {"customer_request": 3}
    assert p["handoffs_by_intent"] == {"order_status": 2, "(none understood)": 1}
    assert p["queue_wait_seconds"]["count"] == 2 and p["first_response_seconds"]["count"] == 0
    assert p["average_handle_seconds"] is not None and p["average_handle_seconds"] >= 0
    assert p["csat"]["average"] == 4.0 and p["csat"]["ratings"] == 1
    assert p["csat"]["response_rate"] == 0.5
    assert p["customer_repeated"] == {"checked": 2, "repeated": 1, "rate": 0.5}
    assert p["dispositions"] == {"order_status": 1, "other": 1}
    assert p["bot_should_have_handled"] == 1
    # The return windows (72 h) are still open: nothing judged yet, all pending.
    assert p["first_contact_resolution"] == {
        "checked": 0,
        "resolved": 0,
        "pending": 2,
        "rate": None,
    }
    assert p["durable_containment"] == {"checked": 0, "durable": 0, "pending": 1, "rate": None}
    # The keyword bot understands everything it reads (confidence 1.0, nothing below 0.6).
    bot = p["bot"]
    assert bot["fallbacks"] == 0 and bot["messages"] == 5  # what the bot read, not the agent
    assert all(row["low_confidence"] == 0 for row in bot["lowest_confidence"])
    assert report["live"] == {"waiting": 1, "agents_online": 0, "at_risk": 0}
    (day,) = p["daily"]
    assert (day["conversations"], day["handoffs"]) == (3, 3)

    # Four days on, the windows are over: Ben came back for a person (not first-contact),
    # Cy did not; Ann never asked for one (durably contained).
    today_start = datetime.combine(date.today(), time.min, tzinfo=UTC)
    later = datetime.now(UTC) + timedelta(days=4)
    judged = figures(
        await store.raw_report(today_start, today_start + timedelta(days=1), None, now=later)
    )
    assert judged["first_contact_resolution"] == {
        "checked": 2,
        "resolved": 1,
        "pending": 0,
        "rate": 0.5,
    }
    assert judged["durable_containment"] == {"checked": 1, "durable": 1, "pending": 0, "rate": 1.0}
