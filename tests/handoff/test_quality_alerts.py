"""Quality alerts: a spike of one problem driven through the gateway (web chat customers, a
scripted Rasa) is seen on the dashboard and posted to a Slack channel (the fake Slack API,
through the outbox); once per problem and hour; acknowledged by a supervisor, audited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import aiohttp
import pytest

from bot.appkeys import ENGINE, SERVICE, STORE
from bot.core.clock import utcnow
from handoff.auth import hash_password
from handoff.quality import poisson_tail
from tests.connectors.test_slack import slack_channels
from tests.fakes.rasa import ScriptedRasa
from tests.fakes.slack_api import FakeSlackApi
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, scripted_gateway
from tests.helpers import AgentClient, CustomerClient

ALERTS = "C0ALERTS1"
NLU = {"my speaker crackles": ("troubleshoot_sound", 0.93), "hello": ("greet", 0.99)}


def test_poisson_tail() -> None:
    assert poisson_tail(0, 2.0) == 1.0
    assert poisson_tail(1, 2.0) == pytest.approx(1 - 0.1353352832, rel=1e-6)
    # Five contacts where 0.05 an hour is usual: far beyond chance.
    assert poisson_tail(5, 0.05) < 3e-8
    # Five where three an hour is usual: an ordinary hour.
    assert poisson_tail(5, 3.0) > 0.18


@pytest.fixture
async def slack_api() -> AsyncIterator[FakeSlackApi]:
    async with FakeSlackApi() as fake:
        yield fake


@pytest.fixture
async def gateway(tmp_path: Path, slack_api: FakeSlackApi) -> AsyncIterator[Gateway]:
    async with scripted_gateway(
        tmp_path,
        ScriptedRasa(NLU),
        channels=slack_channels(slack_api),
        quality_alerts={"min_contacts": 5, "slack_channel": ALERTS},
    ) as gw:
        await gw.app[STORE].add_agent("kim", "Kim", hash_password(AGENT_PASSWORD))
        yield gw


async def customers_say(gateway: Gateway, http: aiohttp.ClientSession, text: str, n: int) -> None:
    for _ in range(n):
        customer = await CustomerClient(gateway.url, http).connect()
        try:
            await customer.say(text, "ok")
        finally:
            await customer.close()
    await gateway.app[SERVICE].drain()


async def test_a_spike_raises_one_alert_on_the_dashboard_and_in_slack(
    gateway: Gateway, http: aiohttp.ClientSession, slack_api: FakeSlackApi
) -> None:
    now = utcnow()
    if now.minute == 59 and now.second >= 45:  # the contacts and the check in one clock hour
        await asyncio.sleep(61 - now.second)
    watch = gateway.app[ENGINE].starter.quality
    assert watch is not None
    await customers_say(gateway, http, "hello", 6)  # greetings name no problem
    await customers_say(gateway, http, "my speaker crackles", 4)
    assert await watch.check(utcnow()) == [], "four is below min_contacts"
    await customers_say(gateway, http, "my speaker crackles", 1)
    (alert,) = await watch.check(utcnow())
    assert (alert.problem, alert.contacts, alert.baseline) == ("troubleshoot_sound", 5, 0.05)
    assert alert.p_value < 1e-6
    assert await watch.check(utcnow()) == [], "one alert per problem and hour"

    post = await slack_api.wait_for_post(lambda c: c.params.get("channel") == ALERTS)
    assert "troubleshoot_sound" in post.params["text"] and "5 customers" in post.params["text"]

    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        today = date.today().isoformat()
        status, report = await sam.api("GET", f"/dashboard?from={today}&to={today}")
        (shown,) = report["alerts"]
        assert (shown["problem"], shown["contacts"], shown["acknowledged"]) == (
            "troubleshoot_sound",
            5,
            False,
        )
        path = f"/alerts/{shown['id']}/acknowledge"
        assert (await kim.api("POST", path))[0] == 403, "supervisors only"
        assert (await sam.api("POST", "/alerts/999/acknowledge"))[0] == 404
        assert (await sam.api("POST", "/alerts/x/acknowledge"))[0] == 404
        status, acknowledged = await sam.api("POST", path)
        assert status == 200 and acknowledged["acknowledged"] is True
        sam_id = (await gateway.app[STORE].agent_by_username("sam")).id  # type: ignore[union-attr]
        assert acknowledged["acknowledged_by"] == sam_id
        (entry,) = await gateway.app[STORE].audit_entries("quality_alert_acknowledged")
        assert entry["details"] == {"alert_id": shown["id"]}
        assert len(await gateway.app[STORE].audit_entries("quality_alert")) == 1
    finally:
        await sam.close()
        await kim.close()
