"""Typing indicators in Chromium: the agent sees "The customer is typing…" while the customer
types in the widget, and the customer sees the agent's typing dots while the agent writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from bot.appkeys import DESK, SERVICE, STORE
from bot.core.state import ConversationState
from tests.browser.conftest import SHOTS, gateway_without_bot, signed_in
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.usefixtures("page_errors")]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with gateway_without_bot(tmp_path) as gw:
        yield gw


async def test_typing_shows_on_both_sides(gateway: Gateway, browser: Browser) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    shop = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
    errors: list[str] = []
    shop.on("pageerror", lambda exc: errors.append(str(exc)))
    await shop.goto(gateway.url + "/")
    await shop.get_by_test_id("blw-launcher").click()
    await shop.get_by_test_id("blw-input").fill("my router keeps dropping")
    await shop.get_by_test_id("blw-send").click()
    await expect(shop.locator("[data-testid=blw-msg][data-sender=customer]")).to_have_count(1)
    await gateway.app[SERVICE].drain()
    (conversation,) = await gateway.app[STORE].conversations_in_states(list(ConversationState))
    sam = await gateway.app[STORE].agent_by_username("sam")
    assert sam is not None
    await gateway.app[DESK].take_over(conversation.id, sam)

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
