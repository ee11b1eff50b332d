"""The customer profile in Chromium: from a conversation's context card to the customer's page,
which shows the shop's records from the real action server (the shipped stack's, over its
read-only backend route, with its token), the earlier conversation with its rating and note;
an agent links the customer's Telegram chat (a wrong id is refused with the reason), and both
channels' conversations are there; unlinking takes it away again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from bot.appkeys import DESK, SERVICE, STORE
from bot.core.types import InboundMessage
from scripts import devctl
from tests.browser.conftest import SHOTS, signed_in
from tests.gateway_fixtures import (
    AGENT_PASSWORD,
    MAYA,
    Gateway,
    gateway_settings,
    running_gateway,
    shop_user,
)
from tests.helpers import CustomerClient, dead_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.usefixtures("page_errors")]


@pytest.fixture
async def gateway(tmp_path: Path, rasa_stack: devctl.Stack) -> AsyncIterator[Gateway]:
    """No bot (Rasa is a closed port); the shop backend is the shipped stack's action server."""
    settings = gateway_settings(
        tmp_path,
        f"http://127.0.0.1:{dead_port()}",
        None,
        backend={
            "url": f"http://127.0.0.1:{rasa_stack.actions_port}",
            "token": devctl.backend_token(),
        },
    )
    async with running_gateway(settings) as gw:
        yield gw


async def test_profile_with_two_linked_channels(
    gateway: Gateway, browser: Browser, http: aiohttp.ClientSession
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    store, desk = gateway.app[STORE], gateway.app[DESK]
    sam = await store.agent_by_username("sam")
    assert sam is not None
    # Maya, signed in to the shop, had a conversation last time: resolved, rated 4, a note.
    customer = await CustomerClient(gateway.url, http).connect(user=shop_user(MAYA))
    try:
        await customer.send("my speaker crackles")
        await customer.wait_for(lambda f: f.get("type") == "ack")
        await gateway.app[SERVICE].drain()
        cid = customer.conversation_id or ""
        await desk.take_over(cid, sam)
        await desk.add_note(cid, sam, "Sent the reset guide")
        await desk.resolve(cid, sam)
        await customer.wait_for(lambda f: f.get("sender") == "system" and "rate" in f["text"])
        await customer.send("4", payload="csat:4")
        await customer.wait_for(lambda f: "Thank you for your feedback" in f.get("text", ""))
    finally:
        await customer.close()
    # She also wrote on Telegram, where nothing says who she is.
    await gateway.app[SERVICE].intake.accept(
        InboundMessage("telegram", "5550101", "t1", "the speaker again", display_name="Maya")
    )

    page = await signed_in(browser, gateway.url, "sam", AGENT_PASSWORD, height=1300)
    await page.goto(f"{gateway.url}/console/conversations/{cid}")
    await page.get_by_test_id("customer-profile-link").click()
    await page.wait_for_url("**/console/customers/*")
    await expect(page.get_by_test_id("customer-title")).to_have_text("Maya Patel")
    await expect(page.get_by_test_id("verified-badge")).to_contain_text("shop customer 1")
    orders = page.get_by_test_id("backend-order")
    await expect(orders.filter(has_text="#1001")).to_have_count(1)
    await expect(page.get_by_test_id("backend-device").filter(has_text="SN100234")).to_have_count(1)
    conversations = page.get_by_test_id("profile-conversation")
    await expect(conversations).to_have_count(1)
    await expect(conversations.first).to_contain_text("resolved by Sam")
    await expect(page.get_by_test_id("profile-rating")).to_have_text("4 ★")
    await expect(page.get_by_test_id("profile-note")).to_contain_text("Sent the reset guide")

    # A wrong id: refused with the reason, nothing linked.
    await page.get_by_test_id("link-channel").select_option("telegram")
    await page.get_by_test_id("link-user").fill("999")
    await page.get_by_test_id("link-submit").click()
    await expect(page.get_by_test_id("link-error")).to_contain_text(
        "nobody has written from telegram"
    )
    await expect(page.get_by_test_id("customer-identity")).to_have_count(1)

    await page.get_by_test_id("link-user").fill("5550101")
    await page.get_by_test_id("link-submit").click()
    await expect(page.get_by_test_id("customer-identity")).to_have_count(2)
    await expect(
        page.locator("[data-testid=customer-identity][data-channel=telegram]")
    ).to_contain_text("5550101")
    await expect(conversations).to_have_count(2)
    await expect(conversations.filter(has_text="Telegram")).to_contain_text("The bot handled it")
    await expect(page.get_by_test_id("customer-summary")).to_contain_text("2 conversations")
    await page.screenshot(path=str(SHOTS / "console-customer-profile.png"), full_page=True)
    (linked,) = await store.audit_entries("identity_linked")
    assert linked["actor"] == f"agent:{sam.id}"

    page.once("dialog", lambda dialog: dialog.accept())
    await (
        page.locator("[data-testid=customer-identity][data-channel=telegram]")
        .get_by_test_id("unlink")
        .click()
    )
    await expect(page.get_by_test_id("customer-identity")).to_have_count(1)
    await expect(conversations).to_have_count(1)
    assert len(await store.audit_entries("identity_unlinked")) == 1
