"""The console's inbox in Chromium: a resolved conversation is still found, by a word the
customer wrote and by a word of a note; filters narrow the list; a row opens the past
conversation with its transcript."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from bot.appkeys import DESK, SERVICE, STORE
from tests.browser.conftest import SHOTS, signed_in
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway
from tests.helpers import CustomerClient, dead_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.usefixtures("page_errors")]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = gateway_settings(tmp_path, f"http://127.0.0.1:{dead_port()}", None)
    async with running_gateway(settings) as gw:
        yield gw


async def chat(gateway: Gateway, http: aiohttp.ClientSession, text: str) -> str:
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.send(text)
        await customer.wait_for(lambda f: f.get("type") == "ack")
        await gateway.app[SERVICE].drain()
        return customer.conversation_id or ""
    finally:
        await customer.close()


async def test_search_filter_and_open_a_past_conversation(
    gateway: Gateway, browser: Browser, http: aiohttp.ClientSession
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    desk, store = gateway.app[DESK], gateway.app[STORE]
    sam = await store.agent_by_username("sam")
    assert sam is not None
    resolved = await chat(gateway, http, "the blender motor smells burnt")
    await desk.take_over(resolved, sam)
    await desk.add_note(resolved, sam, "Sent returns label RMA-7731")
    await desk.resolve(resolved, sam)
    other = await chat(gateway, http, "where is my parcel")

    page = await signed_in(browser, gateway.url, "sam", AGENT_PASSWORD)
    await page.get_by_test_id("nav-inbox").click()
    await page.wait_for_url("**/console/inbox")
    await expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=15_000)
    rows = page.get_by_test_id("inbox-row")
    await expect(rows).to_have_count(2)

    await page.get_by_test_id("inbox-q").fill("blender smell")
    await page.get_by_test_id("inbox-search").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-conversation-id", resolved)
    await expect(rows.first).to_contain_text("Agent takeover")
    await page.get_by_test_id("inbox-q").fill("rma")  # a word of the note, as a prefix
    await page.get_by_test_id("inbox-search").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-conversation-id", resolved)
    await page.screenshot(path=str(SHOTS / "console-inbox.png"), full_page=True)

    await page.get_by_test_id("inbox-q").fill("")
    await page.get_by_test_id("inbox-state").select_option("bot")
    await expect(rows).to_have_count(2)  # both are with the bot now
    await page.get_by_test_id("inbox-mine").check()
    await expect(rows).to_have_count(1)  # only the one Sam handled
    await page.get_by_test_id("inbox-q").fill("nothing like this")
    await page.get_by_test_id("inbox-search").click()
    await expect(page.get_by_test_id("inbox-table")).to_contain_text("No conversation matches.")
    assert other

    await page.get_by_test_id("inbox-q").fill("burnt")
    await page.get_by_test_id("inbox-search").click()
    await rows.first.get_by_role("link").click()
    await page.wait_for_url(f"**/console/conversations/{resolved}")
    await expect(page.get_by_test_id("transcript")).to_contain_text("blender motor smells burnt")
