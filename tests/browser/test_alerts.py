"""Alerts in Chromium: with notifications allowed, a conversation assigned to the agent and a
customer writing in it raise a desktop notification; nothing while the agent is looking at
that conversation. The page's Notification is recorded (a stand-in installed before the page's
scripts), so the test sees exactly what the console asked the browser to show."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from bot.appkeys import DESK, SERVICE, STORE
from tests.browser.conftest import SHOTS, gateway_without_bot, signed_in
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway
from tests.helpers import CustomerClient

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.usefixtures("page_errors")]

RECORD_NOTIFICATIONS = """
window.__notes = [];
class RecordedNotification {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.__notes.push({ title, body: (options || {}).body }); }
}
window.Notification = RecordedNotification;
"""


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with gateway_without_bot(tmp_path) as gw:
        yield gw


async def notes(page: Page) -> list[dict[str, Any]]:
    return list(await page.evaluate("window.__notes"))


async def wait_notes(page: Page, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The recorded notifications once there are ``count`` (the console's CSP forbids the
    string evaluation wait_for_function needs, so this polls)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got := await notes(page)) < count:
        assert asyncio.get_running_loop().time() < deadline, f"notifications so far: {got}"
        await asyncio.sleep(0.1)
    return got


async def test_an_assignment_and_a_customer_message_raise_notifications(
    gateway: Gateway, browser: Browser, http: aiohttp.ClientSession
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = await signed_in(
        browser, gateway.url, "sam", AGENT_PASSWORD, init_script=RECORD_NOTIFICATIONS
    )
    await expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=15_000)
    assert await notes(page) == []

    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.send("my router keeps dropping")
        await customer.wait_for(lambda f: f.get("type") == "ack")
        await gateway.app[SERVICE].drain()
        sam = await gateway.app[STORE].agent_by_username("sam")
        assert sam is not None
        cid = customer.conversation_id or ""
        await gateway.app[DESK].take_over(cid, sam)  # not Sam's own click: the server's doing
        first = (await wait_notes(page, 1))[0]
        assert first["title"] == "A conversation was assigned to you"

        await customer.send("it happens every evening")
        second = (await wait_notes(page, 2))[1]
        assert second == {
            "title": "New message from the customer",
            "body": "it happens every evening",
        }

        # Looking at that conversation: its messages raise nothing.
        await page.goto(f"{gateway.url}/console/conversations/{cid}")
        await expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=15_000)
        await customer.send("are you there?")
        await expect(
            page.get_by_test_id("transcript").get_by_text("are you there?")
        ).to_be_visible()
        assert await notes(page) == []  # a new page: nothing recorded since it loaded
    finally:
        await customer.close()


async def test_the_enable_alerts_button_asks_once(gateway: Gateway, browser: Browser) -> None:
    not_asked_yet = RECORD_NOTIFICATIONS.replace(
        'permission = "granted"', 'permission = "default"'
    ).replace(
        'return Promise.resolve("granted");',
        'RecordedNotification.permission = "granted"; return Promise.resolve("granted");',
    )
    page = await signed_in(browser, gateway.url, "sam", AGENT_PASSWORD, init_script=not_asked_yet)
    button = page.get_by_test_id("enable-alerts")
    await expect(button).to_be_visible()
    await page.screenshot(path=str(SHOTS / "console-enable-alerts.png"))
    await button.click()
    await expect(button).to_be_hidden()
