"""A quality alert in Chromium: the dashboard shows it at the top, and a supervisor
acknowledges it there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from bot.appkeys import ENGINE, SERVICE
from bot.core.clock import utcnow
from tests.browser.conftest import SHOTS, signed_in
from tests.fakes.rasa import ScriptedRasa
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, scripted_gateway
from tests.helpers import CustomerClient

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.usefixtures("page_errors")]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    rasa = ScriptedRasa({"my router drops every evening": ("troubleshoot_wifi", 0.9)})
    async with scripted_gateway(tmp_path, rasa, quality_alerts={"min_contacts": 5}) as gw:
        yield gw


async def test_the_dashboard_shows_and_acknowledges_an_alert(
    gateway: Gateway, browser: Browser, http: aiohttp.ClientSession
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    now = utcnow()
    if now.minute == 59 and now.second >= 45:
        await asyncio.sleep(61 - now.second)
    for _ in range(6):
        customer = await CustomerClient(gateway.url, http).connect()
        try:
            await customer.say("my router drops every evening", "ok")
        finally:
            await customer.close()
    await gateway.app[SERVICE].drain()
    watch = gateway.app[ENGINE].starter.quality
    assert watch is not None and len(await watch.check(utcnow())) == 1

    page = await signed_in(browser, gateway.url, "sam", AGENT_PASSWORD)
    await page.get_by_test_id("nav-dashboard").click()
    alert = page.get_by_test_id("quality-alert")
    await expect(alert).to_contain_text("6 customers wrote about troubleshoot_wifi")
    await expect(alert).to_contain_text("Quality alert")
    await page.screenshot(path=str(SHOTS / "console-quality-alert.png"))
    await alert.get_by_test_id("alert-ack").click()
    await expect(alert).to_contain_text("Acknowledged")
    await expect(alert.get_by_test_id("alert-ack")).to_have_count(0)
