"""Typing indicators: the bot's dots while Rasa answers, "Sam is typing…" for the customer
while the agent writes (only the one who has the conversation), and "The customer is
typing…" for the consoles while people have it, throttled per socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.appkeys import SERVICE, STORE
from handoff.auth import hash_password
from tests.fakes.rasa import ScriptedRasa
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, scripted_gateway
from tests.helpers import AgentClient, CustomerClient


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    rasa = ScriptedRasa({"a person please": ("request_human", 0.99)})
    async with scripted_gateway(tmp_path, rasa) as gw:
        await gw.app[STORE].add_agent("kim", "Kim", hash_password(AGENT_PASSWORD))
        yield gw


async def test_typing_both_ways(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        await customer.say("hello", "")
        frames = customer.frames
        kinds = [f.get("type") for f in frames]
        first_bot = next(
            i
            for i, f in enumerate(frames)
            if f.get("type") == "message" and f.get("sender") == "bot"
        )
        assert [
            f for f in frames[:first_bot] if f.get("type") == "typing" and f.get("sender") == "bot"
        ], kinds

        # With the bot, the customer's typing is nobody's business in the console.
        await sam.open_socket()
        await customer.ws.send_json(  # type: ignore[union-attr]
            {"type": "typing"}
        )
        await asyncio.sleep(0.3)
        assert not [f for f in sam.events if f.get("type") == "typing"]

        await customer.say("a person please", "queue")
        await gateway.app[SERVICE].drain()
        cid = customer.conversation_id or ""
        status, _ = await sam.api("POST", f"/conversations/{cid}/claim")
        assert status == 200

        # The customer types: Sam's console hears it once, however often the widget says so.
        await asyncio.sleep(1.1)  # past the socket's throttle window of the earlier frame
        for _ in range(5):
            await customer.ws.send_json(  # type: ignore[union-attr]
                {"type": "typing"}
            )
        await asyncio.sleep(0.5)
        typing = [f for f in sam.events if f.get("type") == "typing"]
        assert [f["conversation_id"] for f in typing] == [cid]

        # Sam types: the customer sees it; Kim, who does not have it, is refused.
        status, _ = await sam.api("POST", f"/conversations/{cid}/typing")
        assert status == 200
        await customer.wait_for(lambda f: f.get("type") == "typing" and f.get("sender") == "agent")
        status, body = await kim.api("POST", f"/conversations/{cid}/typing")
        assert status == 409 and "another agent" in body["message"]
        status, _ = await kim.api("POST", "/conversations/nope/typing")
        assert status == 404
    finally:
        await customer.close()
        await sam.close()
        await kim.close()
