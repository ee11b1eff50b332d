"""The web chat endpoints: sessions, bad input, dedupe, isolation, Rasa down. No model needed:
Rasa is pointed at a closed port, which is also the "Rasa is down" case."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.appkeys import SERVICE, STORE
from tests.gateway_fixtures import Gateway, gateway_settings, running_gateway
from tests.helpers import CustomerClient, dead_port


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    dead_rasa = f"http://127.0.0.1:{dead_port()}"
    settings = gateway_settings(tmp_path, dead_rasa, None, limits={"max_message_chars": 50})
    async with running_gateway(settings) as gw:
        yield gw


async def test_session_bad_input(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    url = f"{gateway.url}/webchat/session"
    async with http.post(url, data="{not json", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert "JSON" in (await r.json())["message"]
    async with http.post(url, json=["a"]) as r:
        assert r.status == 400
    async with http.post(url, json={"token": 42}) as r:
        assert r.status == 400
    async with http.post(url, json={"token": "forged.token"}) as r:
        assert r.status == 401
        assert (await r.json())["error"] == "invalid_token"
    async with http.post(url, json={"token": None}) as r:
        assert r.status == 200
        body = await r.json()
    assert body["max_message_chars"] == 50, "the widget counts down to the gateway's limit"
    async with http.post(url, json={"token": body["token"]}) as r:
        assert (await r.json())["conversation_id"] == body["conversation_id"]
    async with http.options(url) as r:  # the widget runs on other sites
        assert r.headers["Access-Control-Allow-Origin"] == "*"


async def test_websocket_needs_a_valid_token(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    for params in ({}, {"token": "x.y"}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(f"{gateway.url}/webchat/ws", params=params)
        assert err.value.status == 401


async def test_too_long_message_is_rejected_and_nothing_stored(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        client_id = await customer.send("x" * 51)
        error = await customer.wait_for(lambda f: f.get("type") == "error")
        assert error["code"] == "too_long" and error["client_id"] == client_id
        assert "limit is 50" in error["message"]
        assert customer.conversation_id is not None
        assert await gateway.app[STORE].messages(customer.conversation_id) == []
    finally:
        await customer.close()


async def test_malformed_frames_get_clear_errors(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        assert customer.ws is not None
        await customer.ws.send_str("not json")
        await customer.ws.send_json({"type": "dance"})
        await customer.ws.send_json({"type": "message", "text": "hi"})  # no client_id
        await customer.ws.send_json({"type": "message", "client_id": "c1", "text": ""})
        await customer.ws.send_json({"type": "sync", "after_seq": -3})
        errors = []
        for _ in range(5):
            errors.append(
                await customer.wait_for(
                    lambda f: f.get("type") == "error" and f not in errors, timeout=5
                )
            )
        messages = [e["message"] for e in errors]
        assert "Frames must be JSON objects." in messages
        assert "Unknown frame type 'dance'." in messages
        assert any("client_id" in m for m in messages)
        assert "The message is empty." in messages
        assert any("after_seq" in m for m in messages)
        assert customer.conversation_id is not None
        assert await gateway.app[STORE].messages(customer.conversation_id) == []
    finally:
        await customer.close()


async def test_resent_message_is_stored_once_and_acked_with_the_same_seq(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.send("hello", client_id="same-id")
        first = await customer.wait_for(lambda f: f.get("type") == "ack")
        mark = len(customer.frames)
        await customer.send("hello", client_id="same-id")
        second = await customer.wait_for(lambda f: f.get("type") == "ack", after=mark)
        assert first["seq"] == second["seq"] == 1
        assert customer.conversation_id is not None
        stored = await gateway.app[STORE].messages(customer.conversation_id)
        assert [m.text for m in stored if m.sender_kind.value == "customer"] == ["hello"]
    finally:
        await customer.close()


async def test_rasa_down_customer_is_told_and_message_kept(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        notice = await customer.say("where is my order 1001?", "technical problem")
        assert notice["sender"] == "system"
        assert customer.conversation_id is not None
        conversation = await gateway.app[STORE].conversation(customer.conversation_id)
        assert conversation is not None
        assert conversation.bot_cursor == 0  # not handled: it waits for Rasa to come back
        stored = await gateway.app[STORE].messages(customer.conversation_id)
        assert stored[0].text == "where is my order 1001?"
    finally:
        await customer.close()


async def test_reload_resumes_the_conversation_and_tokens_are_isolated(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    alice = await CustomerClient(gateway.url, http).connect()
    bob = await CustomerClient(gateway.url, http).connect()
    try:
        await alice.send("my card is 4111 1111 1111 1111, secret stuff")
        await alice.wait_for(lambda f: f.get("type") == "ack")
        await bob.send("hi from bob")
        await bob.wait_for(lambda f: f.get("type") == "ack")
        await alice.close()
        # "Reload": same token, new socket; sync brings back the history.
        again = await CustomerClient(gateway.url, http).connect(token=alice.token)
        try:
            assert again.conversation_id == alice.conversation_id
            await again.wait_for(lambda f: f.get("type") == "message" and f["seq"] == 1)
            assert "hi from bob" not in again.texts()
        finally:
            await again.close()
        assert all("secret stuff" not in t for t in bob.texts())
    finally:
        await bob.close()


async def test_rasa_down_for_a_while_offers_a_person(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    dead_rasa = f"http://127.0.0.1:{dead_port()}"
    settings = gateway_settings(
        tmp_path,
        dead_rasa,
        None,
        rasa={"urls": [dead_rasa], "retry_seconds": 0.2, "offer_human_after_seconds": 0.5},
    )
    async with running_gateway(settings) as gw:
        customer = await CustomerClient(gw.url, http).connect()
        try:
            await customer.say("is anybody there?", "technical problem")
            offer = await customer.wait_for(
                lambda f: f.get("type") == "message" and "talk to a person" in f["text"]
            )
            (button,) = offer["buttons"]
            # Retries went on meanwhile, but the customer was told only once.
            assert sum("technical problem" in t for t in customer.texts()) == 1
            await customer.say(button["title"], "number 1 in the queue", payload=button["payload"])
            conversation = await gw.app[STORE].conversation(customer.conversation_id or "")
            assert conversation is not None and conversation.state.value == "queued"
            handoff = await gw.app[STORE].current_handoff(conversation.id)
            assert handoff is not None and handoff.reason == "bot_unavailable"
            # Both customer messages are in the agent's transcript, and handled.
            texts = [t["text"] for t in handoff.packet["transcript"] if t["sender"] == "customer"]
            assert texts[0] == "is anybody there?"
            await gw.app[SERVICE].drain()
            after = await gw.app[STORE].conversation(conversation.id)
            stored = await gw.app[STORE].messages(conversation.id)
            last_customer = max(m.seq for m in stored if m.sender_kind.value == "customer")
            assert after is not None and after.bot_cursor == last_customer  # all handled
        finally:
            await customer.close()
