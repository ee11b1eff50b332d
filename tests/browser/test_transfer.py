"""Transfers in the console, in Chromium: an away colleague cannot be chosen, an online one
can, and the customer is told who is taking over from whom."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from bot.appkeys import DESK, SERVICE, STORE
from tests.browser.conftest import SHOTS, gateway_without_bot, signed_in
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway
from tests.helpers import CustomerClient

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.usefixtures("page_errors")]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    """No bot needed: the conversation goes straight to Sam (the demo supervisor)."""
    async with gateway_without_bot(tmp_path, "kim", "lee") as gw:
        yield gw


async def opened(browser: Browser, gateway: Gateway, username: str, path: str) -> Page:
    page = await signed_in(browser, gateway.url, username, AGENT_PASSWORD)
    await page.goto(gateway.url + path)
    return page


async def with_sam(gateway: Gateway, http: aiohttp.ClientSession, text: str) -> CustomerClient:
    """A web customer who wrote ``text``, taken over by Sam (the bot is down: no answer)."""
    customer = await CustomerClient(gateway.url, http).connect()
    await customer.send(text)
    await customer.wait_for(lambda f: f.get("type") == "ack")
    await gateway.app[SERVICE].drain()
    sam = await gateway.app[STORE].agent_by_username("sam")
    assert sam is not None
    await gateway.app[DESK].take_over(customer.conversation_id or "", sam)
    return customer


async def test_only_online_colleagues_can_be_chosen(
    gateway: Gateway, browser: Browser, http: aiohttp.ClientSession
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    customer = await with_sam(gateway, http, "my router keeps dropping")
    try:
        cid = customer.conversation_id or ""
        # Kim has the console open (online); Lee has not (away).
        kim = await opened(browser, gateway, "kim", "/console")
        await expect(kim.get_by_test_id("live-status")).to_have_text("Live", timeout=15_000)
        page = await opened(browser, gateway, "sam", f"/console/conversations/{cid}")
        select = page.get_by_test_id("transfer-select")
        await expect(select).to_be_visible()
        kim_option = select.locator("option", has_text="Kim (online)")
        lee_option = select.locator("option", has_text="Lee (away)")
        await expect(kim_option).to_be_enabled(timeout=15_000)
        await expect(lee_option).to_be_disabled()
        await page.screenshot(path=str(SHOTS / "console-transfer-choices.png"), full_page=True)

        await select.select_option(label="Kim (online)")
        await page.get_by_test_id("transfer-button").click()
        notice = await customer.wait_for(
            lambda f: f.get("sender") == "system" and "taking over" in f["text"]
        )
        assert notice["text"] == "Kim is taking over from Sam."
    finally:
        await customer.close()


async def test_a_returning_customers_earlier_handoff_and_rating_are_on_the_card(
    gateway: Gateway, browser: Browser, http: aiohttp.ClientSession
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    desk = gateway.app[DESK]
    sam = await gateway.app[STORE].agent_by_username("sam")
    assert sam is not None
    customer = await with_sam(gateway, http, "my speaker crackles")
    try:
        cid = customer.conversation_id or ""
        await desk.resolve(cid, sam)
        await customer.send("5", payload="csat:5")
        await customer.wait_for(lambda f: "Thank you for your feedback" in f.get("text", ""))
        await gateway.app[SERVICE].drain()
        await desk.take_over(cid, sam)  # back a week later, in the same chat
        page = await opened(browser, gateway, "sam", f"/console/conversations/{cid}")
        entry = page.get_by_test_id("past-conversations").get_by_test_id("past-entry")
        await expect(entry).to_have_count(1)
        await expect(entry).to_contain_text("(this chat)")
        await expect(entry).to_contain_text("resolved by Sam")
        await expect(entry.get_by_test_id("past-rating")).to_contain_text("\u2605" * 5)
        await expect(page.get_by_test_id("past-conversations")).not_to_contain_text(
            "First conversation"
        )
        await page.screenshot(path=str(SHOTS / "console-card-history.png"), full_page=True)
    finally:
        await customer.close()


async def test_the_transcript_stays_live_after_resolve(
    gateway: Gateway, browser: Browser, http: aiohttp.ClientSession
) -> None:
    customer = await with_sam(gateway, http, "the doorbell rings twice")
    try:
        cid = customer.conversation_id or ""
        page = await opened(browser, gateway, "sam", f"/console/conversations/{cid}")
        await expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=15_000)
        sam = await gateway.app[STORE].agent_by_username("sam")
        assert sam is not None
        await gateway.app[DESK].resolve(cid, sam)
        await customer.send("5", payload="csat:5")
        transcript = page.get_by_test_id("transcript")
        await expect(transcript).to_contain_text("Thank you for your feedback!", timeout=15_000)
        # No state changes from here on: only the live message events can bring this in.
        await customer.send("and thanks again")
        await expect(transcript).to_contain_text("and thanks again", timeout=10_000)
    finally:
        await customer.close()
