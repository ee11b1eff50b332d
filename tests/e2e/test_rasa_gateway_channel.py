"""Rasa's gateway channel (rasa_addons/gateway_channel.py) in the real Rasa server: replies
and NLU in one request, and the gateway's fallback to the REST channel for a Rasa without it.

The Rasa server runs the gateway tests' own fixture bot (tests/fixture_bot), whose keyword NLU
reads these sentences the same way whatever the shipped bot's data/ says."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.appkeys import SERVICE, STORE
from bot.core.types import SenderKind
from bot.rasa_client import GATEWAY_WEBHOOK, REST_WEBHOOK, RasaClient
from scripts import devctl
from tests.fakes import serve
from tests.gateway_fixtures import gateway_settings, running_gateway
from tests.helpers import CustomerClient, forward

pytestmark = pytest.mark.e2e


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, token: str
) -> tuple[int, dict[str, Any] | list[Any]]:
    """POST to one of Rasa's channels, which answer only requests with the Rasa token."""
    async with http.post(url, json=body, params={"token": token}) as resp:
        return resp.status, await resp.json()


async def test_replies_and_nlu_come_in_one_answer(
    fixture_stack: devctl.Stack, http: aiohttp.ClientSession
) -> None:
    sender = f"gc-{uuid.uuid4()}"
    status, body = await post(
        http,
        f"{fixture_stack.rasa_url}{GATEWAY_WEBHOOK}",
        {"sender": sender, "message": "hello"},
        fixture_stack.token,
    )
    assert status == 200 and isinstance(body, dict)
    assert body["messages"] and all(m["recipient_id"] == sender for m in body["messages"])
    assert body["nlu"]["intent"] == "greet"
    assert 0.5 < body["nlu"]["confidence"] <= 1.0
    assert body["paused"] is False

    # The same NLU as the tracker records for that message.
    async with http.get(
        f"{fixture_stack.rasa_url}/conversations/{sender}/tracker",
        params={"token": fixture_stack.token, "include_events": "NONE"},
    ) as resp:
        latest = (await resp.json())["latest_message"]["intent"]
    assert (latest["name"], latest["confidence"]) == (
        body["nlu"]["intent"],
        pytest.approx(body["nlu"]["confidence"]),
    )

    # Same replies as the REST channel gives for the same message in a fresh conversation.
    _, rest = await post(
        http,
        f"{fixture_stack.rasa_url}{REST_WEBHOOK}",
        {"sender": f"gc-{uuid.uuid4()}", "message": "hello"},
        fixture_stack.token,
    )
    assert isinstance(rest, list)
    assert [m.get("text") for m in rest] == [m.get("text") for m in body["messages"]]


async def test_a_paused_conversation_answers_nothing_and_says_so(
    fixture_stack: devctl.Stack, http: aiohttp.ClientSession
) -> None:
    sender = f"gc-{uuid.uuid4()}"
    client = RasaClient([fixture_stack.rasa_url], fixture_stack.token, http)
    await client.turn(sender, "hi")
    await client.pause(sender)
    answer = await client.turn(sender, "where is my order 1001?")
    assert answer.replies == [] and answer.paused is True
    assert answer.nlu is not None and answer.nlu.intent == "order_status"
    await client.resume(sender)
    answer = await client.turn(sender, "hello")
    assert answer.replies and answer.paused is False


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"message": "hi"}, "sender"),
        ({"sender": "", "message": "hi"}, "sender"),
        ({"sender": "x", "message": 5}, "message"),
        ({"sender": "x", "message": "hi", "metadata": [1]}, "metadata"),
        ([1, 2], "sender"),
    ],
)
async def test_bad_requests_get_a_400_with_a_reason(
    fixture_stack: devctl.Stack, http: aiohttp.ClientSession, body: Any, fragment: str
) -> None:
    status, answer = await post(
        http, f"{fixture_stack.rasa_url}{GATEWAY_WEBHOOK}", body, fixture_stack.token
    )
    assert status == 400 and isinstance(answer, dict)
    assert fragment in answer["error"]


class CountingProxy:
    """A proxy in front of the real Rasa that counts requests by path kind, and can act as a
    Rasa without the gateway channel (404 for it, like a stock credentials.yml)."""

    def __init__(self, upstream: str, *, without_gateway_channel: bool) -> None:
        self.upstream = upstream
        self.without_gateway_channel = without_gateway_channel
        self.calls: Counter[str] = Counter()

    async def forward(self, request: web.Request) -> web.Response:
        kind = (
            "tracker"
            if request.path.endswith("/tracker")
            else request.path.split("/")[2]
            if request.path.startswith("/webhooks/")
            else "other"
        )
        self.calls[kind] += 1
        if self.without_gateway_channel and request.path == GATEWAY_WEBHOOK:
            return web.json_response({"reason": "NotFound"}, status=404)
        return await forward(request, self.upstream)


@pytest.fixture(params=[False, True], ids=["gateway-channel", "rest-only-rasa"])
async def proxy(
    request: pytest.FixtureRequest, fixture_stack: devctl.Stack
) -> AsyncIterator[tuple[CountingProxy, str]]:
    counting = CountingProxy(fixture_stack.rasa_url, without_gateway_channel=request.param)
    runner, url = await serve("/{tail:.*}", counting.forward)
    yield counting, url
    await runner.cleanup()


async def test_the_gateway_records_nlu_with_one_request_per_turn_or_falls_back(
    proxy: tuple[CountingProxy, str],
    fixture_stack: devctl.Stack,
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    counting, url = proxy
    settings = gateway_settings(tmp_path, url, fixture_stack.token)
    async with running_gateway(settings) as gw:
        customer = await CustomerClient(gw.url, http).connect()
        try:
            await customer.say("hello", "")
            await customer.say("what are your opening hours?", "")
            await gw.app[SERVICE].drain()
        finally:
            await customer.close()
        said = [
            m
            for m in await gw.app[STORE].messages(customer.conversation_id)
            if m.sender_kind is SenderKind.CUSTOMER
        ]
    assert [m.intent for m in said] == ["greet", "business_hours"]
    assert all(m.confidence is not None and m.confidence > 0.5 for m in said)
    if counting.without_gateway_channel:
        # Asked once, then the REST channel and a tracker read per turn.
        assert counting.calls["gateway"] == 1
        assert (counting.calls["rest"], counting.calls["tracker"]) == (2, 2)
    else:
        assert (counting.calls["gateway"], counting.calls["rest"]) == (2, 0)
        assert counting.calls["tracker"] == 0
