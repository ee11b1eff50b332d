"""Canned replies in Chromium: a supervisor adds a team reply on the Replies page (a bad one is
refused with the reason, and the form keeps the text); in a conversation, "/" and the start of
the shortcut list it filled in for that conversation, and Enter puts it in the reply box with
the missing value selected for the agent to type over."""

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

STATUS_TEXT = "Hi {customer_name}, order {order_number} ships today. {agent_name}"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with gateway_without_bot(tmp_path) as gw:
        yield gw


async def test_a_supervisor_adds_a_team_reply_and_uses_it_in_a_conversation(
    gateway: Gateway, browser: Browser, http: aiohttp.ClientSession
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = await signed_in(browser, gateway.url, "sam", AGENT_PASSWORD)
    await page.get_by_test_id("nav-canned").click()
    await expect(page.get_by_test_id("canned-table")).to_contain_text("No canned replies yet")

    await page.get_by_test_id("canned-shortcut").fill("status")
    await page.get_by_test_id("canned-scope").select_option("orders")
    await page.get_by_test_id("canned-text").fill("Hi {name}")
    await page.get_by_test_id("canned-save").click()
    await expect(page.get_by_test_id("canned-error")).to_contain_text("Unknown placeholder {name}")
    await expect(page.get_by_test_id("canned-text")).to_have_value("Hi {name}")

    await page.get_by_test_id("canned-text").fill(STATUS_TEXT)
    await page.get_by_test_id("canned-save").click()
    row = page.get_by_test_id("canned-row").filter(has_text="/status")
    await expect(row).to_contain_text("Team: orders")
    await expect(page.get_by_test_id("canned-error")).to_have_text("")
    await page.screenshot(path=str(SHOTS / "console-canned-page.png"))

    # A customer the bot could not help (Rasa is down), taken over by Sam.
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.send("where is my parcel")
        await customer.wait_for(lambda f: f.get("type") == "ack")
        await gateway.app[SERVICE].drain()
        sam = await gateway.app[STORE].agent_by_username("sam")
        assert sam is not None
        await gateway.app[DESK].take_over(customer.conversation_id or "", sam)

        await page.goto(f"{gateway.url}/console/conversations/{customer.conversation_id}")
        box = page.get_by_test_id("reply-input")
        await expect(box).to_be_enabled()
        await box.fill("/st")
        menu = page.get_by_test_id("canned-menu")
        item = page.get_by_test_id("canned-item").filter(has_text="/status")
        await expect(item).to_contain_text(
            "Hi [customer name], order [order number] ships today. Sam"
        )
        await page.screenshot(path=str(SHOTS / "console-canned-menu.png"))
        await box.press("Enter")
        await expect(menu).to_be_hidden()
        await expect(box).to_have_value("Hi [customer name], order [order number] ships today. Sam")
        selected = await box.evaluate("b => b.value.slice(b.selectionStart, b.selectionEnd)")
        assert selected == "[customer name]", "the first missing value is selected to type over"
        stored = await gateway.app[STORE].messages(customer.conversation_id or "")
        assert not [m for m in stored if m.sender_kind.value == "agent"], "Enter picked, not sent"

        await box.fill("/nothing")
        await expect(page.get_by_test_id("canned-empty")).to_contain_text("/nothing")
        await box.press("Enter")  # nothing to pick: not sent either
        await box.press("Escape")
        await expect(menu).to_be_hidden()
        await box.press("Enter")  # a shortcut is never sent to the customer by mistake
        await expect(box).to_have_value("/nothing")
        stored = await gateway.app[STORE].messages(customer.conversation_id or "")
        assert not [m for m in stored if m.sender_kind.value == "agent"]
    finally:
        await customer.close()
