"""Customer verification end to end: the real bot, action server and demo backend behind the
gateway, on the web chat and on Telegram.

Demo customers (actions/backend.py): Maya (1, maya.patel@example.com, N1 9GU, order 1001/1005),
Jonas (2, VIP, jonas.weber@example.com, 10115, orders 1002/1006), Aiko (3, 160-0022, 1003/1007).
"""

from __future__ import annotations

import aiohttp
import pytest

from bot.appkeys import SERVICE, STORE
from bot.core.state import ConversationState
from tests.e2e.test_telegram_journey import CHAT, TelegramCustomer, api, gateway  # noqa: F401
from tests.fakes.telegram_api import FakeTelegramApi
from tests.gateway_fixtures import MAYA, Gateway, shop_user
from tests.helpers import CustomerClient

pytestmark = pytest.mark.e2e

ASK = "the e-mail address or the postcode on your account"


async def test_web_visitor_proves_an_order_is_theirs_and_a_vip_jumps_the_queue(
    gateway: Gateway,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    store = gateway.app[STORE]
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        asked = await customer.say("where is my order 1002?", ASK)
        assert "Nova Phone" not in asked["text"]
        await customer.say("jonas@example.org", "2 tries left")
        answer = await customer.say("my postcode is 10115", "Order 1002 (Nova Phone)")
        assert answer["sender"] == "bot"
        assert "Thanks, Jonas, that matches our records." in customer.texts("bot")
        await customer.say("can I talk to a person please", "queue")
        await gateway.app[SERVICE].drain()
        conversation = await store.conversation(customer.conversation_id or "")
        assert conversation is not None and conversation.state is ConversationState.QUEUED
        handoff = await store.current_handoff(conversation.id)
        assert handoff is not None and handoff.priority == "high"  # a verified VIP
        card = handoff.packet["customer"]
        assert (card["verified_id"], card["verified_by"], card["vip"]) == (
            "2",
            "second_factor",
            True,
        )
        assert card["display_name"] == "Jonas Weber"
        assert "verified_customer" not in handoff.packet["slots"]  # bookkeeping stays out
    finally:
        await customer.close()


async def test_three_wrong_answers_reach_a_person_and_show_nothing(
    gateway: Gateway,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    store = gateway.app[STORE]
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.say("where is order 1003", ASK)
        await customer.say("aiko@example.com", "2 tries left")
        await customer.say("postcode 160-0021", "1 try left")
        await customer.say("it's SW1A 1AA", "couldn't confirm that this order is yours")
        await gateway.app[SERVICE].drain()
        bot_text = " ".join(customer.texts())
        assert "Beacon Router" not in bot_text and "01234567890123" not in bot_text
        conversation = await store.conversation(customer.conversation_id or "")
        assert conversation is not None and conversation.state is ConversationState.QUEUED
        handoff = await store.current_handoff(conversation.id)
        assert handoff is not None and handoff.reason == "verification_failed"
        assert handoff.packet["customer"]["verified_id"] is None
        person = await store.customer(conversation.customer_id)
        assert person is not None and person.verified_id is None
    finally:
        await customer.close()


async def test_a_shop_user_is_answered_at_once_and_only_about_their_own_orders(
    gateway: Gateway,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    customer = await CustomerClient(gateway.url, http).connect(user=shop_user(MAYA))
    try:
        await customer.say("where is my order 1001?", "Order 1001 (Aurora Speaker)")
        answer = await customer.say("and order 1002?", "1002")
        assert "couldn't find order 1002 on your account" in answer["text"]
        assert not any(ASK in t for t in customer.texts("bot"))
        assert "Nova Phone" not in " ".join(customer.texts("bot"))
    finally:
        await customer.close()


async def test_a_telegram_account_stays_linked_once_verified(
    gateway: Gateway,  # noqa: F811
    api: FakeTelegramApi,  # noqa: F811
) -> None:
    store = gateway.app[STORE]
    maya = TelegramCustomer(api, gateway.url, CHAT + 40)
    await maya.say("hi, where is my order 1001", ASK)
    await maya.say("maya.patel@example.com", "Order 1001 (Aurora Speaker)")
    person = await store.find_or_create_customer("telegram", str(maya.chat_id))
    assert person.verified_id == "1" and person.verified_by == "second_factor"
    # A new conversation of the same Telegram user (a fresh bot tracker, no slots): the
    # gateway tells the bot who she is, so it answers without asking again.
    await store.create_conversation(person.id, "telegram", str(maya.chat_id))
    call = await maya.say("is there news on the refund for order 1005?", "1005")
    assert "refund of $249.00 for order 1005" in call.params["text"]
    assert not any(ASK in str(c.params.get("text")) for c in api.calls[-2:])
