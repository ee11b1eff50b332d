"""The Slack connector end to end through HTTP: the real gateway app, real slack-bolt, signed
webhooks in, a fake Slack Web API out. No model needed: Rasa is pointed at a closed port, so
every customer message is answered with the "technical problem" notice, which proves the
outbound path (stored -> deliver -> chat.postMessage)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.appkeys import CONNECTORS, DESK, SERVICE, STORE
from bot.core.errors import DeliveryError
from bot.core.models import Conversation
from bot.core.state import ConversationState
from bot.core.types import Button, Direction, SenderKind, StoredMessage
from bot.store import Store
from connectors.slack import SlackConnector
from tests.fakes import serve
from tests.fakes.slack_api import (
    BOT_USER_ID,
    CUSTOMER_DM,
    FakeSlackApi,
    SlackSender,
    load_payload,
)
from tests.gateway_fixtures import Gateway, gateway_settings, running_gateway
from tests.helpers import dead_port

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TECH_PROBLEM = "technical problem"


def slack_channels(fake: FakeSlackApi) -> dict[str, object]:
    return {
        "slack": {
            "bot_token": fake.token,
            "signing_secret": SIGNING_SECRET,
            "api_base_url": fake.api_url,
        }
    }


@pytest.fixture
async def slack_api() -> AsyncIterator[FakeSlackApi]:
    async with FakeSlackApi() as fake:
        yield fake


@pytest.fixture
async def gateway(tmp_path: Path, slack_api: FakeSlackApi) -> AsyncIterator[Gateway]:
    dead_rasa = f"http://127.0.0.1:{dead_port()}"
    settings = gateway_settings(tmp_path, dead_rasa, None, channels=slack_channels(slack_api))
    async with running_gateway(settings) as gw:
        yield gw


@pytest.fixture
def slack(gateway: Gateway, http: aiohttp.ClientSession) -> SlackSender:
    return SlackSender(gateway.url, SIGNING_SECRET, http)


async def all_conversations(store: Store) -> list[Conversation]:
    return await store.conversations_in_states(list(ConversationState))


async def only_conversation(store: Store) -> Conversation:
    (conversation,) = await all_conversations(store)
    return conversation


async def customer_messages(store: Store, conversation_id: str) -> list[StoredMessage]:
    return [
        m for m in await store.messages(conversation_id) if m.sender_kind is SenderKind.CUSTOMER
    ]


def connector(gateway: Gateway) -> SlackConnector:
    (slack,) = [c for c in gateway.app[CONNECTORS] if isinstance(c, SlackConnector)]
    return slack


async def test_signed_dm_is_stored_and_answered_in_the_same_dm(
    gateway: Gateway, slack: SlackSender, slack_api: FakeSlackApi
) -> None:
    assert len(slack_api.calls_to("auth.test")) == 1  # once, at start-up

    event = slack.dm_event("where is my order 1001?")
    result = await slack.send_event(event)

    assert result.status == 200
    store = gateway.app[STORE]
    conversation = await only_conversation(store)
    assert (conversation.channel, conversation.channel_user_id) == ("slack", CUSTOMER_DM)
    (stored,) = await customer_messages(store, conversation.id)
    assert stored.text == "where is my order 1001?"
    assert stored.channel_message_id == event["event_id"]  # Slack's event_id: the dedupe key
    customer = await store.customer(conversation.customer_id)
    assert customer is not None and customer.display_name == "Alex"  # from users.info

    notice = await slack_api.wait_for_post(lambda c: TECH_PROBLEM in c.params["text"])
    assert notice.params["channel"] == CUSTOMER_DM
    assert "thread_ts" not in notice.params
    assert notice.token == "xoxb-test"
    await gateway.app[SERVICE].drain()
    assert len(slack_api.posts()) == 1
    assert len(slack_api.calls_to("auth.test")) == 1  # bolt reused the start-up answer


async def test_unsigned_forged_or_stale_requests_are_rejected_and_nothing_stored(
    gateway: Gateway, slack: SlackSender, slack_api: FakeSlackApi
) -> None:
    body = json.dumps(slack.dm_event("let me in"))
    forged = SlackSender(gateway.url, "not-the-signing-secret", slack.http)
    five_minutes_ago = int(time.time()) - 5 * 60 - 1

    unsigned = await slack.post(body, signed=False)
    wrong_secret = await forged.post(body)
    stale = await slack.post(body, timestamp=five_minutes_ago)
    tampered = await slack.post(body, headers={"X-Slack-Signature": "v0=" + "0" * 64})
    click = load_payload("block_actions")
    forged_click = await forged.post(
        "payload=" + json.dumps(click), "application/x-www-form-urlencoded"
    )

    for result in (unsigned, wrong_secret, stale, tampered, forged_click):
        assert result.status == 401
    await asyncio.sleep(0.2)
    assert await all_conversations(gateway.app[STORE]) == []
    assert slack_api.posts() == []
    # The same body with a good, fresh signature goes through.
    assert (await slack.post(body)).status == 200
    assert len(await all_conversations(gateway.app[STORE])) == 1


async def test_url_verification_is_answered_with_the_challenge(
    gateway: Gateway, slack: SlackSender
) -> None:
    payload = load_payload("url_verification")

    result = await slack.send_event(payload)

    assert result.status == 200
    assert result.json() == {"challenge": payload["challenge"]}
    assert (await slack.send_event(payload, signed=False)).status == 401


async def test_a_retried_event_is_stored_once_and_answered_once(
    gateway: Gateway, slack: SlackSender, slack_api: FakeSlackApi
) -> None:
    event = slack.dm_event("is anybody there?")

    first = await slack.send_event(event)
    retries = [await slack.send_event(event, retry_num=n) for n in (1, 2)]

    assert first.status == 200 and [r.status for r in retries] == [200, 200]
    store = gateway.app[STORE]
    conversation = await only_conversation(store)
    assert [m.text for m in await customer_messages(store, conversation.id)] == [
        "is anybody there?"
    ]
    await slack_api.wait_for_post(lambda c: TECH_PROBLEM in c.params["text"])
    await gateway.app[SERVICE].drain()
    await asyncio.sleep(0.3)  # room for a wrong second answer to show up
    assert len(slack_api.posts()) == 1


async def test_a_failed_write_is_a_500_so_slack_redelivers(
    gateway: Gateway, slack: SlackSender, slack_api: FakeSlackApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Persist, then acknowledge: no 200 for a message that is not stored."""
    store = gateway.app[STORE]
    real_append = store.append_inbound

    async def database_down(*args: object, **kwargs: object) -> object:
        raise RuntimeError("database is down")

    monkeypatch.setattr(store, "append_inbound", database_down)
    event = slack.dm_event("are you there?")
    assert (await slack.send_event(event)).status == 500

    monkeypatch.setattr(store, "append_inbound", real_append)
    assert (await slack.send_event(event, retry_num=1)).status == 200
    conversation = await only_conversation(store)
    assert [m.text for m in await customer_messages(store, conversation.id)] == ["are you there?"]
    await slack_api.wait_for_post(lambda c: TECH_PROBLEM in c.params["text"])


async def test_a_too_long_message_is_not_stored_and_the_customer_is_told_why(
    gateway: Gateway, slack: SlackSender, slack_api: FakeSlackApi
) -> None:
    assert (await slack.dm("x" * 4001)).status == 200  # acknowledged: a retry would not help

    notice = await slack_api.wait_for_post(lambda c: "limit is 4000" in c.params["text"])
    assert notice.params["channel"] == CUSTOMER_DM
    assert await all_conversations(gateway.app[STORE]) == []  # rejected before anything


async def test_app_mention_is_answered_in_its_thread(
    gateway: Gateway, slack: SlackSender, slack_api: FakeSlackApi
) -> None:
    mention = slack.mention_event("where is my order 1001?")
    root_ts = mention["event"]["ts"]

    assert (await slack.send_event(mention)).status == 200

    store = gateway.app[STORE]
    conversation = await only_conversation(store)
    assert conversation.channel_user_id == f"C0SUPPORT:{root_ts}"
    (stored,) = await customer_messages(store, conversation.id)
    assert stored.text == "where is my order 1001?"  # our @mention is cut off
    notice = await slack_api.wait_for_post(lambda c: TECH_PROBLEM in c.params["text"])
    assert (notice.params["channel"], notice.params["thread_ts"]) == ("C0SUPPORT", root_ts)

    # A later mention inside that thread continues the same conversation.
    follow_up = slack.mention_event("any news?", thread_ts=root_ts)
    assert (await slack.send_event(follow_up)).status == 200
    assert (await only_conversation(store)).id == conversation.id
    texts = [m.text for m in await customer_messages(store, conversation.id)]
    assert texts == ["where is my order 1001?", "any news?"]


async def test_the_bots_own_messages_and_non_customer_events_are_ignored(
    gateway: Gateway, slack: SlackSender, slack_api: FakeSlackApi
) -> None:
    echo = load_payload("bot_message_event")  # our own chat.postMessage, echoed as message.im
    as_bot_message = load_payload("bot_message_event")
    as_bot_message["event"] |= {"subtype": "bot_message", "user": None}
    as_bot_message["event_id"] = "Ev0BOTECHO02"
    edited = slack.dm_event("edited text")
    edited["event"]["subtype"] = "message_changed"
    in_a_channel = slack.dm_event("a channel message without a mention")
    in_a_channel["event"] |= {"channel": "C0SUPPORT", "channel_type": "channel"}

    for payload in (echo, as_bot_message, edited, in_a_channel):
        assert (await slack.send_event(payload)).status == 200

    await asyncio.sleep(0.2)
    assert await all_conversations(gateway.app[STORE]) == []
    assert slack_api.posts() == []
    # Our own user id, even without a bot_id, is not a customer either.
    own = slack.dm_event("I am the bot")
    own["event"]["user"] = BOT_USER_ID
    assert (await slack.send_event(own)).status == 200
    assert await all_conversations(gateway.app[STORE]) == []


async def test_button_press_stores_the_payload(
    gateway: Gateway, slack: SlackSender, slack_api: FakeSlackApi
) -> None:
    click = load_payload("block_actions")  # "No, still a problem" in the customer's DM
    body = "payload=" + json.dumps(click)
    # The bot offered the button first (a payload nobody offered would only count as text).
    store = gateway.app[STORE]
    customer = await store.find_or_create_customer("slack", CUSTOMER_DM)
    conversation = await store.open_conversation(customer.id, "slack", CUSTOMER_DM)
    await store.append_message(
        conversation.id,
        direction=Direction.OUTBOUND,
        sender_kind=SenderKind.BOT,
        text="Did that help?",
        buttons=[Button("No, still a problem", "/deny")],
    )

    result = await slack.post(body, "application/x-www-form-urlencoded")
    again = await slack.post(body, "application/x-www-form-urlencoded")

    assert result.status == 200 and again.status == 200
    store = gateway.app[STORE]
    conversation = await only_conversation(store)
    assert conversation.channel_user_id == CUSTOMER_DM
    (stored,) = await customer_messages(store, conversation.id)  # the second click: a dupe
    assert (stored.text, stored.payload) == ("No, still a problem", "/deny")
    assert stored.channel_message_id == "1700000003.000500:U0CUSTOMER"
    await slack_api.wait_for_post(lambda c: TECH_PROBLEM in c.params["text"])


async def test_agent_messages_buttons_and_rating_in_a_mention_thread(
    gateway: Gateway, slack: SlackSender, slack_api: FakeSlackApi
) -> None:
    """Outbound formatting without Rasa: an agent takes a mention thread over, replies and
    resolves; the rating buttons come as Block Kit and a press lands in that conversation."""
    thread_ts = "1700000500.000100"
    store, desk = gateway.app[STORE], gateway.app[DESK]
    # Made directly: a customer message would go to the (dead) bot first and stay pending.
    customer = await store.find_or_create_customer("slack", f"C0SUPPORT:{thread_ts}")
    conversation = await store.open_conversation(customer.id, "slack", f"C0SUPPORT:{thread_ts}")
    sam = await store.agent_by_username("sam")
    assert sam is not None

    await desk.take_over(conversation.id, sam)
    await desk.agent_reply(conversation.id, sam, "Hi, I'm on it <3 & more")
    await desk.resolve(conversation.id, sam)

    reply = await slack_api.wait_for_post(lambda c: "on it" in c.params["text"])
    assert reply.params["text"] == "*Sam:* Hi, I'm on it &lt;3 &amp; more"
    assert (reply.params["channel"], reply.params["thread_ts"]) == ("C0SUPPORT", thread_ts)
    prompt = await slack_api.wait_for_post(lambda c: "rate this conversation" in c.params["text"])
    assert [b["text"]["text"] for b in prompt.buttons()] == ["1", "2", "3", "4", "5"]
    assert [b["value"] for b in prompt.buttons()] == [f"csat:{n}" for n in range(1, 6)]
    assert [b["action_id"] for b in prompt.buttons()] == [f"csbot_button_{n}" for n in range(1, 6)]

    assert (await slack.press(prompt, "4")).status == 200
    await slack_api.wait_for_post(lambda c: "Thank you for your feedback" in c.params["text"])
    assert [r.rating for r in await store.csat_for(conversation.id)] == [4]


async def test_webhook_answers_fast_while_the_bot_and_slack_are_slow(
    tmp_path: Path, slack_api: FakeSlackApi, http: aiohttp.ClientSession
) -> None:
    """Slack gives up after 3 s; the 200 must not wait for Rasa (held here until released)
    nor for a slow users.info (capped)."""
    release = asyncio.Event()
    rasa_calls: list[float] = []

    async def held_rasa(request: web.Request) -> web.Response:
        rasa_calls.append(time.perf_counter())
        await release.wait()
        return web.json_response([{"recipient_id": "x", "text": "Here I am."}])

    runner, rasa_url = await serve("/{tail:.*}", held_rasa)
    slack_api.delays["users.info"] = 2.0  # over the 1 s cap
    settings = gateway_settings(tmp_path, rasa_url, None, channels=slack_channels(slack_api))
    try:
        async with running_gateway(settings) as gw:
            slack = SlackSender(gw.url, SIGNING_SECRET, http)
            result = await slack.dm("hello, slow bot")
            assert result.status == 200
            assert result.elapsed_ms < 3000
            store = gw.app[STORE]
            (stored,) = await customer_messages(store, (await only_conversation(store)).id)
            assert stored.text == "hello, slow bot"  # stored before the 200
            await asyncio.sleep(0.3)
            assert len(rasa_calls) == 1 and slack_api.posts() == []  # the bot still thinks
            release.set()
            await slack_api.wait_for_post(lambda c: c.params["text"] == "Here I am.")
    finally:
        release.set()
        await runner.cleanup()


async def test_delivery_errors_map_to_retryable_or_permanent(
    gateway: Gateway, slack: SlackSender, slack_api: FakeSlackApi
) -> None:
    await slack.dm("hello")
    conversation = await only_conversation(gateway.app[STORE])
    await slack_api.wait_for_post()
    message = StoredMessage(
        id=0,
        conversation_id=conversation.id,
        seq=99,
        direction=Direction.OUTBOUND,
        sender_kind=SenderKind.BOT,
        text="Did that help?",
        created_at=conversation.created_at,
        buttons=[Button("Yes", "/affirm"), Button("No", "/deny")],
    )
    slack_connector = connector(gateway)

    slack_api.fail("chat.postMessage", "ratelimited", retry_after=7)
    with pytest.raises(DeliveryError) as limited:
        await slack_connector.deliver(conversation, message)
    assert limited.value.retry_after == 7.0 and not limited.value.permanent

    for error in ("channel_not_found", "not_in_channel", "is_archived", "invalid_auth"):
        slack_api.fail("chat.postMessage", error)
        with pytest.raises(DeliveryError) as refused:
            await slack_connector.deliver(conversation, message)
        assert refused.value.permanent, error

    slack_api.fail("chat.postMessage", "internal_error")
    with pytest.raises(DeliveryError) as flaky:
        await slack_connector.deliver(conversation, message)
    assert not flaky.value.permanent and flaky.value.retry_after is None

    await slack_connector.deliver(conversation, message)
    sent = slack_api.posts()[-1]
    assert sent.params["blocks"][0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "Did that help?"},
    }
    assert [(b["text"]["text"], b["value"]) for b in sent.buttons()] == [
        ("Yes", "/affirm"),
        ("No", "/deny"),
    ]


async def test_rate_limited_delivery_is_retried_after_retry_after(
    gateway: Gateway, slack: SlackSender, slack_api: FakeSlackApi
) -> None:
    slack_api.fail("chat.postMessage", "ratelimited", retry_after=1)

    started = time.perf_counter()
    assert (await slack.dm("where is my order 1001?")).status == 200

    notice = await slack_api.wait_for_post(lambda c: TECH_PROBLEM in c.params["text"])
    assert notice.at - started >= 1.0  # waited for Retry-After
    attempts = slack_api.calls_to("chat.postMessage")
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[0].params["text"] == attempts[1].params["text"]
