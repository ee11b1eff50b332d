"""Who the customer is: the shop's signed user ids on the web chat, the bot's identity payload,
and what the gateway tells the bot. A scripted Rasa records the metadata of every message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from bot.appkeys import SERVICE, STORE, WEBCHAT
from bot.core.types import SenderKind
from bot.store.schema import conversations, customers
from connectors.webchat.server import TOKEN_PURPOSE
from tests.fakes.rasa import ScriptedRasa
from tests.gateway_fixtures import (
    MAYA,
    Gateway,
    gateway_settings,
    running_gateway,
    scripted_gateway,
    shop_user,
)
from tests.helpers import CustomerClient

JONAS_VERIFIED = {
    "identity": {
        "customer_id": "2",
        "name": "Jonas Weber",
        "vip": True,
        "method": "second_factor",
    }
}
NLU = {"a person please": ("request_human", 0.99)}
CUSTOMS: dict[str, dict[str, Any]] = {
    "jonas.weber@example.com": JONAS_VERIFIED,
    "identity check": {"identity": {"customer_id": ["2"], "method": "second_factor"}},
    "i am a vip": {
        "handoff": {
            "reason": "customer_request",
            "priority": "normal",
            "customer": {"id": "2", "name": "Jonas Weber", "vip": True},
        }
    },
}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[Gateway, ScriptedRasa]]:
    rasa = ScriptedRasa(NLU, customs=CUSTOMS)
    async with scripted_gateway(tmp_path, rasa) as gw:
        yield gw, rasa


async def session(
    gw: Gateway, http: aiohttp.ClientSession, body: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{gw.url}/webchat/session", json=body) as resp:
        return resp.status, await resp.json()


async def row_counts(gw: Gateway) -> tuple[int, int]:
    store = gw.app[STORE]
    async with store._tx() as conn:
        people = (await conn.execute(sa.select(sa.func.count()).select_from(customers))).scalar()
        chats = (await conn.execute(sa.select(sa.func.count()).select_from(conversations))).scalar()
    return int(people or 0), int(chats or 0)


async def test_a_rightly_signed_shop_user_is_verified_and_keeps_one_history(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    gw, _ = gateway
    store = gw.app[STORE]
    status, first = await session(gw, http, {"token": None, "user": shop_user(MAYA)})
    assert status == 200 and first["verified"] is True
    assert await row_counts(gw) == (0, 0)  # stored with the first message
    customer = await CustomerClient(gw.url, http).connect(first["token"], user=shop_user(MAYA))
    try:
        await customer.say("hello", "ok")
    finally:
        await customer.close()
    conversation = await store.conversation(first["conversation_id"])
    assert conversation is not None
    maya = await store.customer(conversation.customer_id)
    assert maya is not None and (maya.verified_id, maya.verified_by) == ("1", "shop")

    # Resumed with the same user: the same conversation.
    status, again = await session(gw, http, {"token": first["token"], "user": shop_user(MAYA)})
    assert status == 200 and again["conversation_id"] == first["conversation_id"]
    # Another browser, same shop user: a new conversation of the same customer.
    status, other_device = await session(gw, http, {"token": None, "user": shop_user(MAYA)})
    assert other_device["conversation_id"] != first["conversation_id"]
    customer = await CustomerClient(gw.url, http).connect(
        other_device["token"], user=shop_user(MAYA)
    )
    try:
        await customer.say("hello again", "ok")
    finally:
        await customer.close()
    history = await store.conversations_for_customer(maya.id)
    assert {c.id for c in history} == {first["conversation_id"], other_device["conversation_id"]}


async def test_a_token_is_not_resumed_by_someone_else_on_the_same_browser(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    gw, _ = gateway
    _, maya = await session(gw, http, {"token": None, "user": shop_user(MAYA)})
    # Signed out (no user), or signed in as someone else: a fresh conversation each time.
    status, anonymous = await session(gw, http, {"token": maya["token"]})
    assert status == 200 and anonymous["verified"] is False
    assert anonymous["conversation_id"] != maya["conversation_id"]
    _, jonas = await session(gw, http, {"token": maya["token"], "user": shop_user("2")})
    assert jonas["verified"] is True
    assert jonas["conversation_id"] not in (maya["conversation_id"], anonymous["conversation_id"])
    # An anonymous visitor's token does not make a signed-in user's conversation either.
    _, signed_in = await session(gw, http, {"token": anonymous["token"], "user": shop_user(MAYA)})
    assert signed_in["conversation_id"] != anonymous["conversation_id"]
    assert signed_in["verified"] is True


@pytest.mark.parametrize(
    ("user", "status", "code"),
    [
        ({"id": MAYA, "hash": "0" * 64}, 403, "identity_rejected"),
        (shop_user(MAYA, secret="another-shop-secret-0123"), 403, "identity_rejected"),
        ({"id": "2", "hash": shop_user(MAYA)["hash"]}, 403, "identity_rejected"),
        ({"id": MAYA}, 400, "bad_request"),
        ({"id": MAYA, "hash": "xyz"}, 400, "bad_request"),
        ({"id": "", "hash": "0" * 64}, 400, "bad_request"),
        ({"id": 1, "hash": "0" * 64}, 400, "bad_request"),
        ({"id": "a\nb", "hash": "0" * 64}, 400, "bad_request"),
        ({"id": "x" * 300, "hash": "0" * 64}, 400, "bad_request"),
        ("1", 400, "bad_request"),
        ([MAYA], 400, "bad_request"),
    ],
)
async def test_a_wrong_or_malformed_user_is_refused_and_nothing_is_stored(
    gateway: tuple[Gateway, ScriptedRasa],
    http: aiohttp.ClientSession,
    user: Any,
    status: int,
    code: str,
) -> None:
    gw, _ = gateway
    before = await row_counts(gw)
    got, body = await session(gw, http, {"token": None, "user": user})
    assert (got, body["error"]) == (status, code)
    assert body["message"]
    assert await row_counts(gw) == before


async def test_without_a_shop_secret_no_user_is_accepted(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    settings = gateway_settings(tmp_path, "http://127.0.0.1:9", None, identity={})
    async with running_gateway(settings) as gw:
        status, body = await session(gw, http, {"token": None, "user": shop_user(MAYA)})
        assert (status, body["error"]) == (403, "identity_not_configured")
        assert "identity.shop_secret" in body["message"]
        assert await row_counts(gw) == (0, 0)


async def test_the_bot_hears_the_verified_id_only_for_a_verified_customer(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    gw, rasa = gateway
    maya = await CustomerClient(gw.url, http).connect(user=shop_user(MAYA))
    anonymous = await CustomerClient(gw.url, http).connect()
    try:
        await maya.say("where is my order?", "ok")
        await anonymous.say("where is my order please?", "ok")
    finally:
        await maya.close()
        await anonymous.close()
    sent = dict(zip(rasa.received, rasa.metadata, strict=True))
    assert sent["where is my order?"]["verified_customer_id"] == "1"
    assert "verified_customer_id" not in sent["where is my order please?"]


async def test_the_bots_identity_payload_verifies_the_customer_from_then_on(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    gw, rasa = gateway
    store = gw.app[STORE]
    customer = await CustomerClient(gw.url, http).connect()
    try:
        await customer.say("jonas.weber@example.com", "ok")
        await gw.app[SERVICE].drain()
        await customer.say("and my other order?", "ok")
        await customer.say("a person please", "queue")
        await gw.app[SERVICE].drain()
    finally:
        await customer.close()
    assert "verified_customer_id" not in rasa.metadata[0]
    assert rasa.metadata[1]["verified_customer_id"] == "2"
    conversation = await store.conversation(customer.conversation_id or "")
    assert conversation is not None
    jonas = await store.customer(conversation.customer_id)
    assert jonas is not None
    assert (jonas.verified_id, jonas.verified_by, jonas.vip) == ("2", "second_factor", True)
    assert jonas.display_name == "Jonas Weber"
    # The payload itself is for the gateway: the customer sees the bot's text only.
    stored = await store.messages(conversation.id)
    assert not any("identity" in m.text for m in stored if m.sender_kind is SenderKind.BOT)
    # A verified VIP goes to the front of the queue, and the agent sees who they are.
    handoff = await store.current_handoff(conversation.id)
    assert handoff is not None and handoff.priority == "high"
    card = handoff.packet["customer"]
    assert (card["verified_id"], card["verified_by"], card["vip"]) == ("2", "second_factor", True)


async def test_a_malformed_identity_payload_or_a_claim_in_a_signal_verifies_nobody(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    gw, _ = gateway
    store = gw.app[STORE]
    customer = await CustomerClient(gw.url, http).connect()
    try:
        await customer.say("identity check", "ok")
        await customer.say("i am a vip", "queue")  # a handoff signal naming a VIP customer
        await gw.app[SERVICE].drain()
    finally:
        await customer.close()
    conversation = await store.conversation(customer.conversation_id or "")
    assert conversation is not None
    person = await store.customer(conversation.customer_id)
    assert person is not None and person.verified_id is None and person.vip is False
    handoff = await store.current_handoff(conversation.id)
    assert handoff is not None and handoff.priority == "normal"
    card = handoff.packet["customer"]
    assert (card["verified_id"], card["vip"]) == (None, False)


async def test_the_shops_facts_in_a_verified_customers_signal_are_kept(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    """A shop-signed visitor is only an id at first; the bot's handoff signal brings the name
    and the VIP flag from the shop's records, and the customer keeps them."""
    gw, _ = gateway
    store = gw.app[STORE]
    customer = await CustomerClient(gw.url, http).connect(user=shop_user("2"))
    try:
        await customer.say("i am a vip", "queue")
        await gw.app[SERVICE].drain()
    finally:
        await customer.close()
    conversation = await store.conversation(customer.conversation_id or "")
    assert conversation is not None
    handoff = await store.current_handoff(conversation.id)
    assert handoff is not None and handoff.priority == "high"
    jonas = await store.customer(conversation.customer_id)
    assert jonas is not None
    assert (jonas.verified_id, jonas.verified_by, jonas.vip) == ("2", "shop", True)
    assert jonas.display_name == "Jonas Weber"


async def test_a_web_chat_verification_stays_with_its_conversation(
    gateway: tuple[Gateway, ScriptedRasa], http: aiohttp.ClientSession
) -> None:
    """A browser may be someone else's next: another conversation on the same web visitor is
    not verified by the last one's second factor (Telegram and Slack DMs are; see
    tests/e2e/test_verification.py)."""
    gw, rasa = gateway
    store = gw.app[STORE]
    first = await CustomerClient(gw.url, http).connect()
    try:
        await first.say("jonas.weber@example.com", "ok")
        await gw.app[SERVICE].drain()
    finally:
        await first.close()
    old = await store.conversation(first.conversation_id or "")
    assert old is not None and old.verified_id == "2"
    later = await store.create_conversation(old.customer_id, "webchat", old.channel_user_id)
    token = gw.app[WEBCHAT].signer.sign({"v": old.channel_user_id, "c": later.id}, TOKEN_PURPOSE)
    second = await CustomerClient(gw.url, http).connect(token=token)
    try:
        await second.say("where is my order?", "ok")
    finally:
        await second.close()
    assert second.conversation_id == later.id
    assert "verified_customer_id" not in rasa.metadata[-1]
