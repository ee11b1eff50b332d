"""The whole handoff loop for a Telegram customer, with the real bot: webhook updates in (as
Telegram posts them), the customer's chat read off the fake Bot API's sendMessage calls."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.appkeys import STORE
from bot.core.types import Direction
from scripts import devctl
from tests.fakes.telegram_api import TOKEN, FakeTelegramApi, TelegramCall, load_update
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway
from tests.helpers import AgentClient

pytestmark = pytest.mark.e2e

RESULTS = Path(__file__).resolve().parents[2] / "var" / "test-results"
SECRET = "journey-secret_0123456789"
CHAT = 5550001


class TelegramCustomer:
    """One Telegram user in a private chat with the bot."""

    def __init__(self, api: FakeTelegramApi, gateway_url: str, chat_id: int) -> None:
        self.api, self.gateway_url, self.chat_id = api, gateway_url, chat_id
        self.webhook_ms: list[float] = []

    async def _post(self, update: dict[str, object]) -> None:
        status, body, elapsed = await self.api.post_to_webhook(self.gateway_url, update)
        assert status == 200, body
        self.webhook_ms.append(elapsed)

    async def send(self, text: str) -> None:
        update_id = self.api.next_update_id()
        await self._post(load_update("text", update_id=update_id, chat_id=self.chat_id, text=text))

    async def say(self, text: str, expect: str, timeout: float = 30.0) -> TelegramCall:
        """Send a text and wait for the bot's (or agent's) message containing ``expect``."""
        mark = len(self.api.calls)
        await self.send(text)
        return await self.api.wait_for_text(self.chat_id, expect, timeout, after=mark)

    async def press(self, title: str, expect: str, timeout: float = 30.0) -> TelegramCall:
        """Press the inline button ``title`` under the bot's newest message that has one."""
        mark = len(self.api.calls)
        await self._post(self.api.press_button(self.chat_id, title, self.api.next_update_id()))
        return await self.api.wait_for_text(self.chat_id, expect, timeout, after=mark)


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramApi]:
    async with FakeTelegramApi() as fake:
        yield fake


@pytest.fixture
async def gateway(
    rasa_stack: devctl.Stack, tmp_path: Path, api: FakeTelegramApi
) -> AsyncIterator[Gateway]:
    settings = gateway_settings(
        tmp_path,
        rasa_stack.rasa_url,
        rasa_stack.token,
        channels={
            "telegram": {
                "token": TOKEN,
                "public_url": "https://csbot.example.com",
                "secret_token": SECRET,
                "api_base_url": api.url,
            }
        },
    )
    async with running_gateway(settings) as gw:
        yield gw


async def test_telegram_journey_troubleshoot_handoff_agent_resolve_rating(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    customer = TelegramCustomer(api, gateway.url, CHAT)
    agent = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    try:
        await customer.say("my speaker is too quiet", "volume-up")
        did_it_help = await api.wait_for_text(CHAT, "Did that help?")
        keyboard = did_it_help.params["reply_markup"]["inline_keyboard"]
        assert [b["callback_data"] for row in keyboard for b in row] == ["/affirm", "/deny"]
        await customer.press("No, still a problem", "Night mode")
        answered = await api.wait_for(lambda c: c.method == "answerCallbackQuery")
        assert answered.ok
        await customer.say("still too quiet", "restart")
        await customer.say("nope still the same", "connect you with one of our support team")
        await customer.say("yes please", "number 1 in the queue")

        status, queue = await agent.api("GET", "/queue")
        assert status == 200
        (item,) = queue["items"]
        assert item["channel"] == "telegram" and item["customer_name"] == "Ada Lovelace"
        conversation_id = item["conversation_id"]
        status, _ = await agent.api("POST", f"/conversations/{conversation_id}/claim")
        assert status == 200
        await api.wait_for_text(CHAT, "Sam from Technical support joined")

        status, view = await agent.api("GET", f"/conversations/{conversation_id}")
        assert status == 200
        assert view["conversation"]["channel"] == "telegram"
        assert view["conversation"]["channel_user_id"] == str(CHAT)
        packet = view["packet"]
        assert packet["customer"]["channel"] == "telegram"
        assert packet["reason"] == "troubleshooting_failed"
        assert len(packet["steps_tried"]) == 3
        customer_turns = [t for t in packet["transcript"] if t["sender"] == "customer"]
        assert customer_turns[0]["text"] == "my speaker is too quiet"
        assert "No, still a problem" in [t["text"] for t in customer_turns]

        status, _ = await agent.api(
            "POST",
            f"/conversations/{conversation_id}/reply",
            {"text": "Thanks! Let's update its firmware from the app."},
        )
        assert status == 200
        reply = await api.wait_for_text(CHAT, "update its firmware")
        assert reply.params["text"] == "Sam: Thanks! Let's update its firmware from the app."

        status, _ = await agent.api("POST", f"/conversations/{conversation_id}/resolve")
        assert status == 200
        prompt = await api.wait_for_text(CHAT, "rate this conversation")
        assert prompt.button_titles() == ["1", "2", "3", "4", "5"]
        await customer.press("5", "Thank you for your feedback")
        ratings = await gateway.app[STORE].csat_for(conversation_id)
        assert [r.rating for r in ratings] == [5]
    finally:
        await agent.close()


async def test_webhook_handling_time(gateway: Gateway, api: FakeTelegramApi) -> None:
    """Request in -> 200 out (stored, not yet answered) for 20 text updates from 4 customers."""
    customers = [TelegramCustomer(api, gateway.url, CHAT + n) for n in range(1, 5)]
    texts = ["hi", "where is my order 1001?", "what are your opening hours?", "thanks", "bye"]
    for text in texts:
        for customer in customers:
            await customer.send(text)
    times = sorted(ms for c in customers for ms in c.webhook_ms)
    assert len(times) == 20
    store = gateway.app[STORE]
    for customer in customers:  # a 200 means stored
        person = await store.find_or_create_customer("telegram", str(customer.chat_id))
        conversation = await store.open_conversation(person.id, "telegram", str(customer.chat_id))
        messages = await store.messages(conversation.id)
        assert [m.text for m in messages if m.direction is Direction.INBOUND] == texts
    result = {
        "updates": len(times),
        "min_ms": round(times[0], 1),
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[math.ceil(0.95 * len(times)) - 1], 1),  # nearest rank
        "max_ms": round(times[-1], 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "telegram-webhook-ms.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"telegram webhook (request in -> 200 out): {result}")
