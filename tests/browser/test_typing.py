"""Typing indicators in Chromium: the agent sees "The customer is typing…" while the customer
types in the widget, and the customer sees the agent's typing dots while the agent writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import SHOTS, gateway_without_bot, sam_took_over, shop_page, signed_in
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.usefixtures("page_errors")]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with gateway_without_bot(tmp_path) as gw:
        yield gw


async def test_typing_shows_on_both_sides(gateway: Gateway, browser: Browser) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    shop, errors = await shop_page(browser, gateway.url)
    conversation = await sam_took_over(gateway, shop, "my router keeps dropping")

    console = await signed_in(browser, gateway.url, "sam", AGENT_PASSWORD)
    await console.goto(f"{gateway.url}/console/conversations/{conversation.id}")
    await expect(console.get_by_test_id("live-status")).to_have_text("Live", timeout=15_000)
    typing_line = console.get_by_test_id("customer-typing")
    await expect(typing_line).to_be_hidden()

    # Typed key by key, over more than the widget's 3 s between signals.
    await shop.get_by_test_id("blw-input").press_sequentially(
        "it drops every evening around eight", delay=100
    )
    await expect(typing_line).to_be_visible(timeout=10_000)
    await expect(typing_line).to_have_text("The customer is typing…")
    await console.screenshot(path=str(SHOTS / "console-customer-typing.png"))
    await expect(typing_line).to_be_hidden(timeout=8_000)  # a few seconds after the last sign

    await console.get_by_test_id("reply-input").press_sequentially("Let me check", delay=20)
    dots = shop.get_by_test_id("blw-typing")
    await expect(dots).to_be_visible()
    await expect(dots).to_have_attribute("aria-label", "Sam is typing…")
    await shop.screenshot(path=str(SHOTS / "widget-agent-typing.png"))
    assert errors == []
