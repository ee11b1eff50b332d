"""Unread counts in Chromium: the queue page shows how many customer messages wait unseen in
each of my conversations, they clear once I open the conversation, and a new one counts up
live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from bot.appkeys import DESK, SERVICE, STORE
from tests.browser.conftest import SHOTS, gateway_without_bot, signed_in
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway
from tests.helpers import CustomerClient

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.usefixtures("page_errors")]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with gateway_without_bot(tmp_path) as gw:
        yield gw


async def test_unread_counts_on_the_queue_page(
    gateway: Gateway, browser: Browser, http: aiohttp.ClientSession
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.send("my order never came")
        await customer.wait_for(lambda f: f.get("type") == "ack")
        await gateway.app[SERVICE].drain()
        cid = customer.conversation_id or ""
        sam = await gateway.app[STORE].agent_by_username("sam")
        assert sam is not None
        await gateway.app[DESK].take_over(cid, sam)
        for text in ("hello?", "it was order 1001"):
            await customer.send(text)
            await customer.wait_for(lambda f, t=text: f.get("text") == t)

        page = await signed_in(browser, gateway.url, "sam", AGENT_PASSWORD)
        row = page.get_by_test_id("my-conversation-row")
        await expect(row.get_by_test_id("unread-count")).to_have_text("3")
        await page.screenshot(path=str(SHOTS / "console-unread.png"))

        await row.get_by_role("link", name="Open").click()
        await expect(page.get_by_test_id("transcript")).to_contain_text("it was order 1001")
        await expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=15_000)
        await page.get_by_role("link", name="Queue", exact=True).first.click()
        await expect(row).to_have_count(1)
        await expect(row.get_by_test_id("unread-count")).to_have_count(0)

        await expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=15_000)
        await customer.send("any news?")
        await expect(row.get_by_test_id("unread-count")).to_have_text("1")
    finally:
        await customer.close()
