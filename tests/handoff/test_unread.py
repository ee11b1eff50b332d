"""Unread counts: customer messages an agent has not seen, per conversation assigned to them,
counted from how far they read (stored, so it holds on every device)."""

from __future__ import annotations

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


async def test_unread_counts_follow_what_the_agent_read(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        await customer.say("a person please", "queue")
        await gateway.app[SERVICE].drain()
        cid = customer.conversation_id or ""
        assert await sam.api("GET", "/unread") == (200, {"counts": {}}), "not Sam's yet"
        assert (await sam.api("POST", f"/conversations/{cid}/claim"))[0] == 200
        assert await sam.api("GET", "/unread") == (200, {"counts": {cid: 1}})

        for text in ("are you there?", "it's about order 1001"):
            await customer.send(text)
            await customer.wait_for(lambda f, t=text: f.get("text") == t)
        assert await sam.api("GET", "/unread") == (200, {"counts": {cid: 3}})
        assert await kim.api("GET", "/unread") == (200, {"counts": {}}), "only the assignee's"

        last = customer.max_seq()
        assert await sam.api("POST", f"/conversations/{cid}/read", {"seq": last}) == (
            200,
            {"ok": True},
        )
        assert await sam.api("GET", "/unread") == (200, {"counts": {}})
        # An older mark (another tab, late) does not bring them back.
        assert (await sam.api("POST", f"/conversations/{cid}/read", {"seq": 1}))[0] == 200
        assert await sam.api("GET", "/unread") == (200, {"counts": {}})

        await customer.send("hello?")
        await customer.wait_for(lambda f: f.get("text") == "hello?")
        assert await sam.api("GET", "/unread") == (200, {"counts": {cid: 1}})

        for bad in ({"seq": -1}, {"seq": "7"}, {"seq": True}, {}):
            status, body = await sam.api("POST", f"/conversations/{cid}/read", bad)
            assert (status, body["error"]) == (400, "bad_request"), bad
        status, _ = await sam.api("POST", "/conversations/nope/read", {"seq": 1})
        assert status == 404
    finally:
        await customer.close()
        await sam.close()
        await kim.close()
