"""The customer profile: one person across channels. Linking and unlinking by hand (audited),
the profile's conversations, handoffs, ratings and notes, and the shop's records read from the
backend API (here a small fake of rasa_addons/action_server.py's route; the real one is
driven in tests/browser/test_customer_profile.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.appkeys import DESK, SERVICE, STORE
from bot.core.types import InboundMessage
from tests.fakes.rasa import ScriptedRasa
from tests.gateway_fixtures import (
    AGENT_PASSWORD,
    MAYA,
    Gateway,
    gateway_settings,
    running_gateway,
    scripted_gateway,
    shop_user,
)
from tests.helpers import AgentClient, CustomerClient, dead_port, listen

BACKEND_TOKEN = "backend-token-0123456789"
OVERVIEW = {
    "customer": {"id": 1, "name": "Maya Patel", "vip": False},
    "orders": [{"number": "1001", "status": "shipped", "items": ["Aura speaker"]}],
    "devices": [{"serial": "SN100234", "product": "Aura speaker", "under_warranty": True}],
    "repairs": [],
}


@pytest.fixture
async def backend() -> AsyncIterator[dict[str, Any]]:
    """A stand-in for the action server's read-only route; ``state["up"]`` switches it."""
    state: dict[str, Any] = {"up": True, "asked": []}

    async def overview(request: web.Request) -> web.Response:
        state["asked"].append((request.match_info["id"], request.query.get("token")))
        if not state["up"]:
            return web.json_response({"error": "down"}, status=503)
        if request.query.get("token") != BACKEND_TOKEN:
            return web.json_response({"error": "a valid ?token= is required"}, status=401)
        if request.match_info["id"] != "1":
            return web.json_response({"error": "no customer"}, status=404)
        return web.json_response(OVERVIEW)

    app = web.Application()
    app.router.add_get("/backend/customers/{id}", overview)
    runner = web.AppRunner(app)
    await runner.setup()
    state["url"] = f"http://127.0.0.1:{await listen(runner)}"
    yield state
    await runner.cleanup()


@pytest.fixture
async def gateway(tmp_path: Path, backend: dict[str, Any]) -> AsyncIterator[Gateway]:
    settings = gateway_settings(
        tmp_path,
        f"http://127.0.0.1:{dead_port()}",
        None,
        backend={"url": backend["url"], "token": BACKEND_TOKEN},
    )
    async with running_gateway(settings) as gw:
        yield gw


async def telegram_customer(gateway: Gateway, chat_id: str, text: str) -> str:
    """A customer who wrote on Telegram (through the intake, as the connector does)."""
    intake = gateway.app[SERVICE].intake
    result = await intake.accept(
        InboundMessage("telegram", chat_id, f"u-{chat_id}-{text}", text, display_name="M. Patel")
    )
    assert result.conversation_id is not None
    conversation = await gateway.app[STORE].conversation(result.conversation_id)
    assert conversation is not None
    return conversation.customer_id


async def test_link_shows_both_channels_their_history_and_the_shop_records(
    gateway: Gateway, http: aiohttp.ClientSession, backend: dict[str, Any]
) -> None:
    store, desk = gateway.app[STORE], gateway.app[DESK]
    customer = await CustomerClient(gateway.url, http).connect(user=shop_user(MAYA))
    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    try:
        await customer.send("my speaker is broken")
        await customer.wait_for(lambda f: f.get("type") == "ack")
        await gateway.app[SERVICE].drain()
        cid = customer.conversation_id or ""
        agent = await store.agent_by_username("sam")
        assert agent is not None
        await desk.take_over(cid, agent)
        await desk.add_note(cid, agent, "Promised a courier for Monday")
        await desk.resolve(cid, agent)
        await customer.wait_for(lambda f: f.get("sender") == "system" and "rate" in f["text"])
        await customer.send("5", payload="csat:5")
        await customer.wait_for(lambda f: "Thank you for your feedback" in f.get("text", ""))
        conversation = await store.conversation(cid)
        assert conversation is not None
        maya = conversation.customer_id
        telegram = await telegram_customer(gateway, "5550101", "hi, it's Maya again")
        assert telegram != maya

        status, before = await sam.api("GET", f"/customers/{maya}")
        assert status == 200
        assert before["customer"]["verified_id"] == MAYA
        assert [i["channel"] for i in before["identities"]] == ["webchat"]
        (only,) = before["conversations"]
        (handoff,) = only["handoffs"]
        assert (handoff["reason"], handoff["agent"], handoff["rating"]) == (
            "agent_takeover",
            "Sam",
            5,
        )
        assert before["ratings"] == {"count": 1, "average": 5.0}
        assert [n["text"] for n in before["notes"]] == ["Promised a courier for Monday"]
        assert before["backend"]["status"] == "ok"
        assert before["backend"]["orders"][0]["number"] == "1001"
        assert backend["asked"][-1] == (MAYA, BACKEND_TOKEN)

        status, linked = await sam.api(
            "POST",
            f"/customers/{maya}/identities",
            {"channel": "telegram", "channel_user_id": "5550101"},
        )
        assert status == 200, linked
        assert {(i["channel"], i["channel_user_id"]) for i in linked["identities"]} == {
            ("telegram", "5550101"),
            ("webchat", conversation.channel_user_id),
        }
        assert {c["channel"] for c in linked["conversations"]} == {"webchat", "telegram"}
        (entry,) = await store.audit_entries("identity_linked")
        assert entry["actor"] == f"agent:{agent.id}"
        assert entry["details"]["from_customer_id"] == telegram
        # The next message on Telegram belongs to Maya's one history...
        assert await telegram_customer(gateway, "5550101", "any news?") == maya
        # ...but an agent's link is not proof: the chat does not carry Maya's verification
        # (not to the bot, not on the card) until it verifies itself.
        (tg,) = [c for c in await store.conversations_for_customer(maya) if c.channel == "telegram"]
        turn = await store.pending_turn(tg.id)
        assert turn is not None and turn.customer_verified_id == MAYA
        assert turn.identity_linked_by == f"agent:{agent.id}"
        assert (await desk.conversation_view(tg.id))["customer"]["verified_id"] is None
        assert (await desk.conversation_view(cid))["customer"]["verified_id"] == MAYA
        assert any(i["linked_by_hand"] for i in linked["identities"])
        await store.identity_verified("telegram", "5550101")  # the bot's second factor passed
        assert (await desk.conversation_view(tg.id))["customer"]["verified_id"] == MAYA

        status, unlinked = await sam.api(
            "POST",
            f"/customers/{maya}/identities/unlink",
            {"channel": "telegram", "channel_user_id": "5550101"},
        )
        assert status == 200, unlinked
        assert [i["channel"] for i in unlinked["identities"]] == ["webchat"]
        assert [c["channel"] for c in unlinked["conversations"]] == ["webchat"]
        assert len(await store.audit_entries("identity_unlinked")) == 1
    finally:
        await customer.close()
        await sam.close()


async def test_bad_links_get_clear_errors_and_change_nothing(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    try:
        maya = await telegram_customer(gateway, "42", "hello")
        cases = [
            ({"channel": "fax", "channel_user_id": "1"}, 400, "channel must be one of"),
            ({"channel": "telegram", "channel_user_id": " "}, 400, "channel_user_id is missing"),
            ({"channel": "telegram", "channel_user_id": "x" * 256}, 400, "too long"),
            ({"channel": "telegram", "channel_user_id": 7}, 400, "channel_user_id is missing"),
            ({"channel": "slack", "channel_user_id": "U999"}, 404, "nobody has written from slack"),
        ]
        for body, status, message in cases:
            got, answer = await sam.api("POST", f"/customers/{maya}/identities", body)
            assert (got, message in answer["message"]) == (status, True), (body, answer)
        got, answer = await sam.api(
            "POST", "/customers/nobody/identities", {"channel": "telegram", "channel_user_id": "42"}
        )
        assert got == 404
        got, answer = await sam.api(
            "POST",
            f"/customers/{maya}/identities/unlink",
            {"channel": "telegram", "channel_user_id": "42"},
        )
        assert (got, answer["error"]) == (400, "only_identity")
        assert (await sam.api("GET", "/customers/nobody"))[0] == 404
        status, profile = await sam.api("GET", f"/customers/{maya}")
        assert [i["channel_user_id"] for i in profile["identities"]] == ["42"]
        assert profile["backend"]["status"] == "not_verified"
        async with sam.http.post(
            f"{gateway.url}/console/api/customers/{maya}/identities",
            json={"channel": "telegram", "channel_user_id": "42"},
        ) as resp:
            assert resp.status == 403, "no CSRF token, no change"
    finally:
        await sam.close()


async def test_the_shop_backend_down_or_unknown_is_said_not_raised(
    gateway: Gateway, backend: dict[str, Any]
) -> None:
    profiles = gateway.app[DESK].customers
    assert (await profiles.backend("1"))["status"] == "ok"
    assert (await profiles.backend("2"))["status"] == "unknown"
    assert (await profiles.backend("not-a-number"))["status"] == "unknown"
    backend["up"] = False
    down = await profiles.backend("1")
    assert down["status"] == "unavailable" and "could not be read" in down["message"]
    profiles.settings = profiles.settings.model_copy(
        update={"backend": profiles.settings.backend.model_copy(update={"url": None})}
    )
    assert (await profiles.backend("1"))["status"] == "off"


async def test_a_linked_chat_that_proves_to_be_someone_else_stays_hand_linked(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """An agent linked Bob's Telegram chat to Maya by mistake; Bob then passes the bot's check
    as shop customer 2. His chat must not start carrying Maya's verification."""
    bob_says = "it's Bob, order 1002"
    rasa = ScriptedRasa(
        {}, customs={bob_says: {"identity": {"customer_id": "2", "method": "second_factor"}}}
    )
    async with scripted_gateway(tmp_path, rasa) as gateway:
        store, desk = gateway.app[STORE], gateway.app[DESK]
        maya = await CustomerClient(gateway.url, http).connect(user=shop_user(MAYA))
        sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
        try:
            await maya.say("hello", "ok")
            webchat = await store.conversation(maya.conversation_id or "")
            assert webchat is not None
            await telegram_customer(gateway, "777", "hi")
            status, _ = await sam.api(
                "POST",
                f"/customers/{webchat.customer_id}/identities",
                {"channel": "telegram", "channel_user_id": "777"},
            )
            assert status == 200
            await telegram_customer(gateway, "777", bob_says)
            await gateway.app[SERVICE].drain()
            (tg,) = [
                c
                for c in await store.conversations_for_customer(webchat.customer_id)
                if c.channel == "telegram"
            ]
            identity = next(
                i for i in await store.identities(webchat.customer_id) if i.channel == "telegram"
            )
            assert identity.linked_by is not None, "still hand-linked: Bob is not Maya"
            view = await desk.conversation_view(tg.id)
            assert view["customer"]["verified_id"] == "2", "Bob, for his own conversation"
            turn = await store.pending_turn(tg.id)
            assert turn is not None and turn.identity_linked_by is not None
        finally:
            await maya.close()
            await sam.close()
