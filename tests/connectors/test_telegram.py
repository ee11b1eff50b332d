"""The Telegram connector: the real gateway app and real python-telegram-bot code against a fake
Bot API (tests/fakes/telegram_api.py). No model needed: Rasa is pointed at a closed port, so
every stored customer message is answered with the "technical problem" system message, which
proves the message was stored, processed and delivered through the outbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.appkeys import CONNECTORS, DESK, SERVICE, STORE
from bot.config import Settings, SettingsError
from bot.core.errors import DeliveryError
from bot.core.models import Conversation
from bot.core.state import ConversationState
from bot.core.types import (
    EDITED_PAYLOAD,
    UNSUPPORTED_PAYLOAD,
    Button,
    Direction,
    InboundMessage,
    SenderKind,
    StoredMessage,
)
from bot.pipeline.bot_turn import NOTICES
from bot.pipeline.intake import AcceptResult
from bot.store import Store
from connectors.telegram import EXPIRED_BUTTON, TelegramConnector
from tests.fakes.telegram_api import TOKEN, FakeTelegramApi, load_update
from tests.gateway_fixtures import Gateway, gateway_settings, running_gateway
from tests.helpers import dead_port

UNSUPPORTED_REPLY = NOTICES[UNSUPPORTED_PAYLOAD]
EDITED_REPLY = NOTICES[EDITED_PAYLOAD]

SECRET = "tg-secret_for-tests-0123"
PUBLIC_URL = "https://csbot.example.com/"
WEBHOOK = "/telegram/webhook"
CHAT = 424242
TECH_PROBLEM = "technical problem"


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramApi]:
    async with FakeTelegramApi() as fake:
        yield fake


def settings_for(tmp_path: Path, api: FakeTelegramApi, **telegram: Any) -> Settings:
    dead_rasa = f"http://127.0.0.1:{dead_port()}"
    return gateway_settings(
        tmp_path,
        dead_rasa,
        None,
        limits={"max_message_chars": 200},
        channels={"telegram": {"token": TOKEN, "api_base_url": api.url, **telegram}},
    )


@pytest.fixture
async def gateway(tmp_path: Path, api: FakeTelegramApi) -> AsyncIterator[Gateway]:
    settings = settings_for(tmp_path, api, public_url=PUBLIC_URL, secret_token=SECRET)
    async with running_gateway(settings) as gw:
        yield gw


def connector(gw: Gateway) -> TelegramConnector:
    (tg,) = [c for c in gw.app[CONNECTORS] if isinstance(c, TelegramConnector)]
    return tg


async def conversation_of(store: Store, chat_id: int) -> Conversation | None:
    for conversation in await store.conversations_in_states(list(ConversationState)):
        if conversation.channel == "telegram" and conversation.channel_user_id == str(chat_id):
            return conversation
    return None


async def customer_messages(gw: Gateway, chat_id: int) -> list[StoredMessage]:
    conversation = await conversation_of(gw.app[STORE], chat_id)
    if conversation is None:
        return []
    return [
        m
        for m in await gw.app[STORE].messages(conversation.id)
        if m.sender_kind is SenderKind.CUSTOMER
    ]


async def quiet_period(gw: Gateway, seconds: float = 0.5) -> None:
    """Let background processing and the outbox finish what they would still send."""
    await gw.app[SERVICE].drain()
    await asyncio.sleep(seconds)


async def test_start_registers_the_webhook_with_its_secret(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    assert api.calls_to("getMe")
    (call,) = api.calls_to("setWebhook")
    assert call.ok
    assert call.params["url"] == "https://csbot.example.com/telegram/webhook"
    assert call.params["secret_token"] == SECRET
    assert {"message", "edited_message", "callback_query"} <= set(call.params["allowed_updates"])
    assert not api.calls_to("getUpdates")  # no polling next to the webhook


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x", SECRET[:-1]])
async def test_wrong_or_missing_secret_is_refused_and_nothing_stored(
    gateway: Gateway, api: FakeTelegramApi, secret: str | None
) -> None:
    update = load_update("text", update_id=api.next_update_id())
    status, body, _ = await api.post_to_webhook(gateway.url, update, secret=secret)
    assert status == 403
    assert body["error"] == "forbidden" and "Secret-Token" in body["message"]
    await quiet_period(gateway, 0.2)
    assert await conversation_of(gateway.app[STORE], CHAT) is None
    assert not api.calls_to("sendMessage")


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"\xff\xfe", b"[1, 2]", b'{"message": {"text": "no update_id"}}', b""],
)
async def test_a_body_that_is_not_an_update_is_400(
    gateway: Gateway, http: aiohttp.ClientSession, body: bytes
) -> None:
    async with http.post(
        gateway.url + WEBHOOK,
        data=body,
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "bad_request"


async def test_a_redelivered_update_is_stored_once_and_answered_once(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    update = load_update("text", update_id=api.next_update_id())
    # Telegram re-sends an update when our 200 got lost: both deliveries succeed.
    for _ in range(2):
        status, body, _ = await api.post_to_webhook(gateway.url, update)
        assert (status, body) == (200, {"ok": True})
    await api.wait_for_text(CHAT, TECH_PROBLEM)
    await quiet_period(gateway)
    stored = await customer_messages(gateway, CHAT)
    assert [m.text for m in stored] == ["my speaker is too quiet"]
    assert stored[0].channel_message_id == f"u{update['update_id']}"
    assert len(api.sent_texts(CHAT)) == 1


async def test_text_is_stored_with_the_customers_name_and_answered(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    update = load_update("text", update_id=api.next_update_id(), text="where is order 1001?")
    status, _, _ = await api.post_to_webhook(gateway.url, update)
    assert status == 200
    # Persist, then acknowledge: the message is in the store when the 200 arrives.
    (stored,) = await customer_messages(gateway, CHAT)
    assert stored.text == "where is order 1001?" and stored.payload is None
    conversation = await conversation_of(gateway.app[STORE], CHAT)
    assert conversation is not None and conversation.channel == "telegram"
    customer = await gateway.app[STORE].customer(conversation.customer_id)
    assert customer is not None and customer.display_name == "Ada Lovelace"
    reply = await api.wait_for_text(CHAT, TECH_PROBLEM)
    assert "reply_markup" not in reply.params


async def test_start_command_asks_the_bot_to_greet(gateway: Gateway, api: FakeTelegramApi) -> None:
    status, _, _ = await api.post_to_webhook(
        gateway.url, load_update("start", update_id=api.next_update_id())
    )
    assert status == 200
    (stored,) = await customer_messages(gateway, CHAT)
    assert (stored.text, stored.payload) == ("/start", "/greet")
    await api.wait_for_text(CHAT, TECH_PROBLEM)


async def test_other_commands_reach_the_bot_as_words(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    update = load_update("text", update_id=api.next_update_id(), text="/help")
    status, _, _ = await api.post_to_webhook(gateway.url, update)
    assert status == 200
    (stored,) = await customer_messages(gateway, CHAT)
    assert (stored.text, stored.payload) == ("help", None)


def fail_first_accept(monkeypatch: pytest.MonkeyPatch, tg: TelegramConnector) -> list[str]:
    """The first message the connector hands on fails as if the database were down."""
    seen: list[str] = []
    original = tg.accept

    async def flaky(message: InboundMessage) -> AcceptResult:
        seen.append(message.channel_message_id)
        if len(seen) == 1:
            raise RuntimeError("database is down")
        return await original(message)

    monkeypatch.setattr(tg, "accept", flaky)
    return seen


async def test_an_update_that_could_not_be_stored_is_not_acknowledged(
    gateway: Gateway, api: FakeTelegramApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = fail_first_accept(monkeypatch, connector(gateway))
    update = load_update("text", update_id=api.next_update_id())
    status, body, _ = await api.post_to_webhook(gateway.url, update)
    assert status == 500 and body["error"] == "failed"  # Telegram sends it again
    assert await customer_messages(gateway, CHAT) == []
    status, _, _ = await api.post_to_webhook(gateway.url, update)
    assert status == 200
    assert len(await customer_messages(gateway, CHAT)) == 1
    assert seen == [f"u{update['update_id']}"] * 2
    await api.wait_for_text(CHAT, TECH_PROBLEM)


async def send_buttons(gw: Gateway, chat_id: int, buttons: list[Button]) -> None:
    """Deliver a bot question with buttons to the chat, as the outbox would."""
    store = gw.app[STORE]
    customer = await store.find_or_create_customer("telegram", str(chat_id), "Ada Lovelace")
    conversation = await store.open_conversation(customer.id, "telegram", str(chat_id))
    message = await store.append_message(
        conversation.id,
        direction=Direction.OUTBOUND,
        sender_kind=SenderKind.BOT,
        text="Did that help?",
        buttons=buttons,
    )
    await connector(gw).deliver(conversation, message)


async def test_a_pressed_button_is_answered_and_its_payload_stored(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    long_payload = '/inform{"order_number": "1001", "note": "' + "x" * 80 + '"}'
    await send_buttons(
        gateway,
        CHAT,
        [Button("Yes, it's fixed", "/affirm"), Button("Tell me more", long_payload)],
    )
    (question,) = api.calls_to("sendMessage", chat_id=CHAT)
    keyboard = question.params["reply_markup"]["inline_keyboard"]
    sent_data = [b["callback_data"] for row in keyboard for b in row]
    assert sent_data[0] == "/affirm"
    assert len(sent_data[1].encode()) <= 64  # Telegram's limit; the payload is mapped

    for title in ["Tell me more", "Yes, it's fixed"]:
        update = api.press_button(CHAT, title, api.next_update_id())
        status, _, _ = await api.post_to_webhook(gateway.url, update)
        assert status == 200
        answered = await api.wait_for(lambda c: c.method == "answerCallbackQuery")
        assert answered.params["callback_query_id"] == update["callback_query"]["id"]
        api.calls.remove(answered)
    stored = await customer_messages(gateway, CHAT)
    assert [(m.text, m.payload) for m in stored] == [
        ("Tell me more", long_payload),
        ("Yes, it's fixed", "/affirm"),
    ]
    # The buttons are taken off the question, so an answer can't be given twice.
    edit = await api.wait_for(lambda c: c.method == "editMessageReplyMarkup")
    assert edit.ok and edit.params["chat_id"] == CHAT
    assert "reply_markup" not in api.sent[(CHAT, edit.params["message_id"])]


async def test_a_button_from_the_recorded_payload_reaches_the_store(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    # The bot offered the button first (a payload nobody offered would only count as text).
    await send_buttons(gateway, CHAT, [Button("No, still a problem", "/deny")])
    update = load_update("callback_query", update_id=api.next_update_id())
    status, _, _ = await api.post_to_webhook(gateway.url, update)
    assert status == 200
    (stored,) = await customer_messages(gateway, CHAT)
    assert (stored.text, stored.payload) == ("No, still a problem", "/deny")
    await api.wait_for(lambda c: c.method == "answerCallbackQuery")
    await api.wait_for_text(CHAT, TECH_PROBLEM)


async def test_an_expired_long_payload_button_is_answered_and_not_stored(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    # A mapped payload this process no longer knows (a restart), on a message without its
    # keyboard (older than 48 hours): nothing to forward, so the customer is asked to type.
    update = load_update("callback_query", update_id=api.next_update_id(), data="#p:0123abcd")
    del update["callback_query"]["message"]["reply_markup"]
    status, _, _ = await api.post_to_webhook(gateway.url, update)
    assert status == 200
    answered = await api.wait_for(lambda c: c.method == "answerCallbackQuery")
    assert answered.params["text"] == EXPIRED_BUTTON
    await quiet_period(gateway, 0.2)
    assert await customer_messages(gateway, CHAT) == []


UNSUPPORTED_CASES: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    # (Photos and documents are downloaded and kept: tests/connectors/test_telegram_files.py.)
    ("sticker", {}, "[sticker]", UNSUPPORTED_REPLY),
    ("voice", {}, "[voice message]", UNSUPPORTED_REPLY),
    ("location", {}, "[location]", UNSUPPORTED_REPLY),
    ("edited_message", {}, "[edited message] my speaker is far too quiet", EDITED_REPLY),
    ("channel_post", {}, None, None),
    ("my_chat_member", {}, None, None),
    ("text", {"chat": {"id": -4001, "title": "Friends", "type": "group"}}, None, None),
]


@pytest.mark.parametrize(
    ("name", "changes", "stored_text", "reply"),
    UNSUPPORTED_CASES,
    ids=[c[0] if not c[1] else "group_text" for c in UNSUPPORTED_CASES],
)
async def test_updates_it_cannot_read_never_crash(
    gateway: Gateway,
    api: FakeTelegramApi,
    name: str,
    changes: dict[str, Any],
    stored_text: str | None,
    reply: str | None,
) -> None:
    update = load_update(name, update_id=api.next_update_id(), **changes)
    status, body, _ = await api.post_to_webhook(gateway.url, update)
    assert (status, body) == (200, {"ok": True})
    if stored_text is None:
        # No private chat with a customer: acknowledged and ignored.
        await quiet_period(gateway)
        assert await gateway.app[STORE].conversations_in_states(list(ConversationState)) == []
        assert not api.calls_to("sendMessage")
        return
    (stored,) = await customer_messages(gateway, CHAT)
    assert stored.text == stored_text
    assert reply is not None
    await api.wait_for_text(CHAT, reply)
    # The same update again: stored once, the polite reply not repeated.
    status, _, _ = await api.post_to_webhook(gateway.url, update)
    assert status == 200
    await quiet_period(gateway)
    assert len(await customer_messages(gateway, CHAT)) == 1
    assert api.sent_texts(CHAT).count(reply) == 1
    # The gateway answered it; it never went to the bot (whose Rasa is down in these tests).
    assert not [t for t in api.sent_texts(CHAT) if "technical problem" in t]


async def test_too_long_text_is_refused_with_an_explanation(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    update = load_update("text", update_id=api.next_update_id(), text="x" * 201)
    status, _, _ = await api.post_to_webhook(gateway.url, update)
    assert status == 200  # handled: resending would not make it shorter
    await api.wait_for_text(CHAT, "the limit is 200")
    assert await customer_messages(gateway, CHAT) == []


async def test_a_failed_delivery_is_retried_after_retry_after(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    api.fail_next("sendMessage", 429, retry_after=1)
    await api.post_to_webhook(gateway.url, load_update("text", update_id=api.next_update_id()))
    delivered = await api.wait_for_text(CHAT, TECH_PROBLEM, timeout=15)
    refused = api.calls_to("sendMessage", chat_id=CHAT)[0]
    assert refused.status == 429 and refused.params["text"] == delivered.params["text"]
    assert delivered.at - refused.at >= 0.9  # waited as Telegram asked
    await quiet_period(gateway)
    assert len(api.sent_texts(CHAT)) == 1


async def test_deliver_formats_messages_and_maps_telegram_errors(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    store, tg = gateway.app[STORE], connector(gateway)
    customer = await store.find_or_create_customer("telegram", str(CHAT), None)
    conversation = await store.open_conversation(customer.id, "telegram", str(CHAT))

    async def outbound(kind: SenderKind, text: str, name: str | None = None) -> StoredMessage:
        return await store.append_message(
            conversation.id,
            direction=Direction.OUTBOUND,
            sender_kind=kind,
            text=text,
            sender_name=name,
        )

    await tg.deliver(conversation, await outbound(SenderKind.AGENT, "Hello!", "Sam"))
    await tg.deliver(conversation, await outbound(SenderKind.SYSTEM, "Sam joined."))
    assert api.sent_texts(CHAT) == ["Sam: Hello!", "Sam joined."]

    long = await outbound(SenderKind.BOT, "y" * 5000)
    await tg.deliver(conversation, long)
    assert [len(t) for t in api.sent_texts(CHAT)[2:]] == [4096, 904]

    message = await outbound(SenderKind.BOT, "Anything else?")
    api.fail_next("sendMessage", 429, retry_after=3)
    with pytest.raises(DeliveryError) as err:
        await tg.deliver(conversation, message)
    assert err.value.retry_after == 3.0 and not err.value.permanent
    for status in (403, 400):  # blocked by the customer; chat not found
        api.fail_next("sendMessage", status)
        with pytest.raises(DeliveryError) as err:
            await tg.deliver(conversation, message)
        assert err.value.permanent
    api.fail_next("sendMessage", 500)
    with pytest.raises(DeliveryError) as err:
        await tg.deliver(conversation, message)
    assert not err.value.permanent and err.value.retry_after is None


async def test_polling_mode_answers_updates_from_get_updates_and_stops_cleanly(
    tmp_path: Path, api: FakeTelegramApi
) -> None:
    api.webhook = {"url": "https://old.example.com/hook"}  # left over from a webhook setup
    async with running_gateway(settings_for(tmp_path, api)) as gw:
        assert api.calls_to("deleteWebhook")
        assert not api.calls_to("setWebhook")
        update = load_update("text", update_id=api.next_update_id())
        await api.queue_update(update)
        await api.wait_for_text(CHAT, TECH_PROBLEM)
        (stored,) = await customer_messages(gw, CHAT)
        assert stored.channel_message_id == f"u{update['update_id']}"
        # The next getUpdates confirms the stored update (offset = its id + 1).
        await api.wait_for(
            lambda c: c.method == "getUpdates" and c.params.get("offset") == update["update_id"] + 1
        )
        started = time.perf_counter()
    stop_seconds = time.perf_counter() - started
    assert stop_seconds < 3  # the long poll is cancelled, not waited out
    assert api.updates == []  # confirmed: a restart will not fetch it again
    # (The fake records the cancelled long poll once it would have answered.)
    await asyncio.sleep(api.max_poll_wait + 0.3)
    polls = len(api.calls_to("getUpdates"))
    await asyncio.sleep(api.max_poll_wait + 0.3)
    assert len(api.calls_to("getUpdates")) == polls  # the loop has ended


async def test_polling_fetches_an_update_again_until_it_is_stored(
    tmp_path: Path, api: FakeTelegramApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_gateway(settings_for(tmp_path, api)) as gw:
        seen = fail_first_accept(monkeypatch, connector(gw))
        update = load_update("text", update_id=api.next_update_id())
        await api.queue_update(update)
        await api.wait_for_text(CHAT, TECH_PROBLEM)
        assert seen == [f"u{update['update_id']}"] * 2
        assert len(await customer_messages(gw, CHAT)) == 1


async def test_a_rejected_token_stops_the_gateway_from_starting(
    tmp_path: Path, api: FakeTelegramApi
) -> None:
    settings = settings_for(tmp_path, api, token="7000000001:wrong")
    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN"):
        async with running_gateway(settings):
            pass
    (call,) = api.calls_to("getMe")
    assert call.status == 401


async def test_telegram_unreachable_at_start_is_retried_in_the_background(
    tmp_path: Path, api: FakeTelegramApi
) -> None:
    api.fail_next("getMe", 502, "Bad Gateway")
    settings = settings_for(tmp_path, api, public_url=PUBLIC_URL, secret_token=SECRET)
    async with running_gateway(settings) as gw:  # the gateway (web chat) starts anyway
        update = load_update("text", update_id=api.next_update_id())
        status, body, _ = await api.post_to_webhook(gw.url, update, secret=SECRET)
        assert status == 503 and body["error"] == "not_ready"  # Telegram will resend it
        await api.wait_for(lambda c: c.method == "setWebhook", timeout=5)
        await asyncio.sleep(0.2)
        status, _, _ = await api.post_to_webhook(gw.url, update)
        assert status == 200
        await api.wait_for_text(CHAT, TECH_PROBLEM)


async def test_an_agent_typing_shows_telegrams_typing_action(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    update = load_update("text", update_id=api.next_update_id(), text="a person please")
    await api.post_to_webhook(gateway.url, update)
    await quiet_period(gateway)
    conversation = await conversation_of(gateway.app[STORE], CHAT)
    assert conversation is not None
    sam = await gateway.app[STORE].agent_by_username("sam")
    assert sam is not None
    await gateway.app[DESK].take_over(conversation.id, sam)
    before = len(api.calls_to("sendChatAction", chat_id=CHAT))  # the bot's own, while it tried
    await gateway.app[DESK].agent_typing(conversation.id, sam)
    calls = api.calls_to("sendChatAction", chat_id=CHAT)
    assert len(calls) == before + 1
    assert calls[-1].ok and calls[-1].params["action"] == "typing"
