"""Canned replies through the console API: personal and team replies, who may manage which,
placeholders filled from the conversation (with a visible hint for a missing value), and bad
input answered with a 4xx that says what to fix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.appkeys import STORE
from handoff.auth import hash_password
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway
from tests.helpers import AgentClient, dead_port


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    dead_rasa = f"http://127.0.0.1:{dead_port()}"
    async with running_gateway(gateway_settings(tmp_path, dead_rasa, None)) as gw:
        store = gw.app[STORE]
        await store.add_agent("kim", "Kim", hash_password(AGENT_PASSWORD), teams=["orders"])
        await store.add_agent("lee", "Lee", hash_password(AGENT_PASSWORD), teams=["general"])
        yield gw


async def test_team_and_personal_replies_and_who_manages_them(gateway: Gateway) -> None:
    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)  # the demo supervisor
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    lee = await AgentClient(gateway.url).login("lee", AGENT_PASSWORD)
    try:
        status, team_reply = await sam.api(
            "POST",
            "/canned",
            {
                "shortcut": "/Refund-Time",
                "text": "Refunds take 5 days, {customer_name}.",
                "team": "orders",
            },
        )
        assert status == 200 and team_reply["shortcut"] == "refund-time"
        assert team_reply["team"] == "orders" and not team_reply["personal"]
        status, mine = await kim.api(
            "POST", "/canned", {"shortcut": "ref", "text": "Hi {customer_name}"}
        )
        assert status == 200 and mine["personal"] and mine["editable"]

        # Kim (orders) sees the team's reply and her own, shortest shortcut first; Lee
        # (general) sees neither.
        status, listed = await kim.api("GET", "/canned?q=/ref")
        assert [r["shortcut"] for r in listed["items"]] == ["ref", "refund-time"]
        assert [r["editable"] for r in listed["items"]] == [True, False]
        _, others = await lee.api("GET", "/canned")
        assert others["items"] == []

        # Only supervisors add or change a team's replies; nobody touches another's own.
        status, body = await kim.api(
            "POST", "/canned", {"shortcut": "x", "text": "y", "team": "orders"}
        )
        assert status == 403 and "supervisors" in body["message"]
        status, _ = await kim.api(
            "PUT", f"/canned/{team_reply['id']}", {"shortcut": "a", "text": "b"}
        )
        assert status == 403
        status, _ = await lee.api("DELETE", f"/canned/{mine['id']}")
        assert status == 404
        status, changed = await sam.api(
            "PUT", f"/canned/{team_reply['id']}", {"shortcut": "refund", "text": "Five days."}
        )
        assert status == 200 and changed["shortcut"] == "refund"
        status, _ = await kim.api("DELETE", f"/canned/{mine['id']}")
        assert status == 200
        _, listed = await kim.api("GET", "/canned")
        assert [r["shortcut"] for r in listed["items"]] == ["refund"]
    finally:
        for client in (sam, kim, lee):
            await client.close()


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"shortcut": "", "text": "x"}, 400, "shortcut must be"),
        ({"shortcut": "two words", "text": "x"}, 400, "shortcut must be"),
        ({"shortcut": "ok", "text": "  "}, 400, "empty"),
        ({"shortcut": "ok", "text": "x" * 2001}, 400, "limit is 2000"),
        ({"shortcut": "ok", "text": "Hi {name}"}, 400, "Unknown placeholder {name}"),
        ({"shortcut": "ok", "text": "x", "team": "nope"}, 400, "no team 'nope'"),
        ({"shortcut": 5, "text": "x"}, 400, "shortcut must be"),
    ],
)
async def test_bad_canned_replies_are_refused_with_a_reason(
    gateway: Gateway, body: dict[str, object], status: int, fragment: str
) -> None:
    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    try:
        got, answer = await sam.api("POST", "/canned", body)
        assert got == status and fragment in answer["message"], answer
        _, listed = await sam.api("GET", "/canned")
        assert listed["items"] == [], "nothing was stored"
    finally:
        await sam.close()


async def test_a_shortcut_is_unique_in_its_scope(gateway: Gateway) -> None:
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        await kim.api("POST", "/canned", {"shortcut": "hi", "text": "Hello!"})
        status, body = await kim.api("POST", "/canned", {"shortcut": "hi", "text": "Hey"})
        assert status == 400 and "/hi is already one of yours" in body["message"]
        status, _ = await kim.api("PUT", "/canned/abc", {"shortcut": "a", "text": "b"})
        assert status == 404
    finally:
        await kim.close()


async def test_placeholders_are_filled_from_the_conversation(gateway: Gateway) -> None:
    store = gateway.app[STORE]
    customer = await store.find_or_create_customer("webchat", "v1", "Maya Patel")
    conversation = await store.open_conversation(customer.id, "webchat", "v1")
    await store.create_handoff(
        conversation.id, {"facts": {"order_number": "1001"}}, "customer_request", "orders", "normal"
    )
    other = await store.open_conversation(
        (await store.find_or_create_customer("webchat", "v2")).id, "webchat", "v2"
    )
    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    try:
        await sam.api(
            "POST",
            "/canned",
            {
                "shortcut": "status",
                "text": "Hi {customer_name}, order {order_number} is on its way. {agent_name}",
                "team": "orders",
            },
        )
        status, body = await sam.api("GET", f"/conversations/{conversation.id}/canned?q=st")
        assert status == 200
        (item,) = body["items"]
        assert item["filled"] == "Hi Maya Patel, order 1001 is on its way. Sam"
        assert item["missing"] == []
        _, body = await sam.api("GET", f"/conversations/{other.id}/canned?q=st")
        (item,) = body["items"]
        assert item["filled"] == "Hi [customer name], order [order number] is on its way. Sam"
        assert item["missing"] == ["customer_name", "order_number"]
        status, _ = await sam.api("GET", "/conversations/nope/canned")
        assert status == 404
    finally:
        await sam.close()
