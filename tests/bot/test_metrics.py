"""GET /metrics: the gateway's counters for Prometheus, only for the bearer of the token, and
counting what really happened (a scripted Rasa, a customer, an agent)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.appkeys import DESK, SERVICE, STORE
from tests.fakes.rasa import ScriptedRasa
from tests.gateway_fixtures import (
    AGENT_PASSWORD,
    Gateway,
    gateway_settings,
    running_gateway,
    scripted_gateway,
)
from tests.helpers import AgentClient, CustomerClient, dead_port

TOKEN = "metrics-token-0123456789"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    rasa = ScriptedRasa({"a person please": ("request_human", 0.99)})
    async with scripted_gateway(tmp_path, rasa, metrics={"token": TOKEN}) as gw:
        yield gw


async def scrape(gw: Gateway, http: aiohttp.ClientSession) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with http.get(f"{gw.url}/metrics", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


async def test_the_counters_follow_a_conversation(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    desk, store = gateway.app[DESK], gateway.app[STORE]
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.say("hello", "ok")
        await customer.say("a person please", "queue")
        await gateway.app[SERVICE].drain()
        sam = await store.agent_by_username("sam")
        assert sam is not None
        cid = customer.conversation_id or ""
        await desk.claim(cid, sam)
        await desk.agent_reply(cid, sam, "Hi, Sam here")
        await desk.resolve(cid, sam)
        await customer.send("4", payload="csat:4")
        await customer.wait_for(lambda f: "Thank you for your feedback" in f.get("text", ""))
        await gateway.app[SERVICE].drain()
    finally:
        await customer.close()
    got = await scrape(gateway, http)
    assert got["csbot_customer_messages_total{channel=webchat}"] == 3
    assert got["csbot_bot_turns_total{outcome=answered}"] == 1
    assert got["csbot_bot_turns_total{outcome=handoff}"] == 1
    assert got["csbot_handoffs_total{source=policy,state=queued}"] == 1
    assert got["csbot_agent_replies_total{}"] == 1
    assert got["csbot_resolved_total{}"] == 1
    assert got["csbot_csat_ratings_total{score=4}"] == 1
    assert got["csbot_rasa_turn_seconds_count{}"] == 2
    assert got["csbot_handoff_reasons_total{reason=explicit_request}"] == 1
    assert got["csbot_outbox_backlog{}"] == 0, "web chat needs no outbox"
    # Resolved: nobody waits now, in any team.
    assert got["csbot_queue_waiting{team=general}"] == 0
    assert got["csbot_queue_waiting{team=orders}"] == 0


async def test_the_live_gauges_show_who_waits_where_and_who_is_online(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    store = gateway.app[STORE]
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.say("a person please", "queue")
        await gateway.app[SERVICE].drain()
        got = await scrape(gateway, http)
        assert got["csbot_queue_waiting{team=general}"] == 1
        assert got["csbot_queue_waiting{team=orders}"] == 0
        assert 0 <= got["csbot_queue_oldest_wait_seconds{team=general}"] < 60
        assert got["csbot_queue_oldest_wait_seconds{team=orders}"] == 0
        # Sam (the demo supervisor) has no console open: nobody is online.
        assert got["csbot_agents_online{team=general}"] == 0
        assert got["csbot_sla_at_risk{team=general}"] == 0
        sam = await store.agent_by_username("sam")
        assert sam is not None
        await gateway.app[DESK].claim(customer.conversation_id or "", sam)
        got = await scrape(gateway, http)
        assert got["csbot_queue_waiting{team=general}"] == 0
        assert got["csbot_websocket_connections{kind=customer}"] == 1
        assert got["csbot_websocket_connections{kind=console}"] == 0
        # With the console open, Sam counts as online in each of his teams.
        console = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
        try:
            await console.open_socket()
            await asyncio.sleep(0.2)
            got = await scrape(gateway, http)
            assert got["csbot_agents_online{team=general}"] == 1
            assert got["csbot_agents_online{team=tech_support}"] == 1
            assert got["csbot_websocket_connections{kind=console}"] == 1
        finally:
            await console.close()
    finally:
        await customer.close()


async def test_metrics_need_the_token(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": TOKEN + "x"},
    ):
        async with http.get(f"{gateway.url}/metrics", headers=headers) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert "csbot_" not in await resp.text()


async def test_without_a_token_metrics_are_off(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    settings = gateway_settings(tmp_path, f"http://127.0.0.1:{dead_port()}", None)
    async with running_gateway(settings) as gw:
        async with http.get(f"{gw.url}/metrics") as resp:
            assert resp.status == 404
            assert "METRICS_TOKEN" in (await resp.json())["message"]


def test_a_short_token_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        gateway_settings(tmp_path, "http://127.0.0.1:9", None, metrics={"token": "short"})
