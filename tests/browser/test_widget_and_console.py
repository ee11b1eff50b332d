"""The journey in a real Chromium: a customer in the widget on the demo page, an agent in the
console. Screenshots of both are saved under var/test-results/screenshots/."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from bot.appkeys import STORE
from scripts import devctl
from tests.browser.conftest import SHOTS
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
async def gateway(rasa_stack: devctl.Stack, tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = gateway_settings(tmp_path, rasa_stack.rasa_url, rasa_stack.token)
    async with running_gateway(settings) as gw:
        yield gw


def last_msg(page: Page, sender: str) -> Any:
    return page.locator(f"[data-testid=blw-msg][data-sender={sender}]").last


async def customer_says(page: Page, text: str) -> None:
    await page.get_by_test_id("blw-input").fill(text)
    await page.get_by_test_id("blw-send").click()


async def test_widget_and_console_journey(gateway: Gateway, browser: Browser) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    shop = await (await browser.new_context(viewport={"width": 1280, "height": 860})).new_page()
    errors: list[str] = []
    shop.on("pageerror", lambda exc: errors.append(str(exc)))
    # The agent is already logged in, watching the (empty) live queue.
    console = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
    console.on("pageerror", lambda exc: errors.append(str(exc)))
    await console.goto(gateway.url + "/console/login")
    await console.get_by_test_id("login-username").fill("sam")
    await console.get_by_test_id("login-password").fill(AGENT_PASSWORD)
    await console.get_by_test_id("login-submit").click()
    await expect(console.get_by_test_id("queue-row")).to_have_count(0)
    await shop.goto(gateway.url + "/")
    await shop.get_by_test_id("blw-launcher").click()
    await expect(shop.get_by_test_id("blw-panel")).to_be_visible()

    await customer_says(shop, "my speaker is too quiet")
    await expect(
        shop.locator("[data-testid=blw-msg][data-sender=bot]").filter(has_text="volume-up")
    ).to_have_count(1, timeout=30_000)
    for step_text in ("Night mode", "restart"):
        await (
            shop.get_by_test_id("blw-quick-reply")
            .filter(has_text="No, still a problem")
            .last.click()
        )
        await expect(
            shop.locator("[data-testid=blw-msg][data-sender=bot]").filter(has_text=step_text)
        ).to_have_count(1, timeout=30_000)
    await shop.get_by_test_id("blw-quick-reply").filter(has_text="No, still a problem").last.click()
    await expect(
        shop.get_by_test_id("blw-quick-reply").filter(has_text="Yes, connect me")
    ).to_have_count(1, timeout=30_000)
    t_trigger = time.perf_counter()
    await shop.get_by_test_id("blw-quick-reply").filter(has_text="Yes, connect me").click()
    await expect(shop.get_by_test_id("blw-queue")).to_contain_text("1", timeout=30_000)

    row = console.get_by_test_id("queue-row").first
    await expect(row).to_be_visible(timeout=15_000)  # pushed over the websocket, no reload
    handoff_visible_s = time.perf_counter() - t_trigger
    await console.screenshot(path=str(SHOTS / "console-queue.png"))
    await row.get_by_test_id("claim-button").click()

    await expect(console.get_by_test_id("context-card")).to_be_visible(timeout=15_000)
    await expect(console.get_by_test_id("steps-tried").locator("li")).to_have_count(3)
    await expect(console.get_by_test_id("context-card")).to_contain_text("troubleshooting")
    await expect(shop.get_by_test_id("blw-panel")).to_contain_text("Sam", timeout=15_000)

    await customer_says(shop, "It's the Aurora Speaker in my kitchen")
    await expect(
        console.get_by_test_id("transcript-msg").filter(has_text="Aurora Speaker in my kitchen")
    ).to_have_count(1, timeout=15_000)

    await console.get_by_test_id("reply-input").fill("Thanks! Let's update its firmware together.")
    t_reply = time.perf_counter()
    await console.get_by_test_id("reply-send").click()
    await expect(last_msg(shop, "agent")).to_contain_text("update its firmware", timeout=15_000)
    reply_visible_s = time.perf_counter() - t_reply
    await console.screenshot(path=str(SHOTS / "console-conversation.png"), full_page=True)
    await shop.screenshot(path=str(SHOTS / "widget-with-agent.png"))

    await console.get_by_test_id("resolve-button").click()
    # The wrap-up: the bot's last intent (a sound problem) preselects the disposition.
    await expect(console.get_by_test_id("wrapup-disposition")).to_have_value("technical_problem")
    await console.get_by_test_id("wrapup-bot-should").check()
    await console.screenshot(path=str(SHOTS / "console-wrapup.png"))
    await console.get_by_test_id("wrapup-confirm").click()
    await expect(shop.get_by_test_id("blw-quick-reply").filter(has_text="5")).to_have_count(
        1, timeout=15_000
    )
    await shop.get_by_test_id("blw-quick-reply").filter(has_text="5").click()
    await expect(last_msg(shop, "system")).to_contain_text(
        "Thank you for your feedback", timeout=15_000
    )
    await shop.screenshot(path=str(SHOTS / "widget-after-rating.png"))

    store = gateway.app[STORE]
    conversation_id = await shop.evaluate(
        "() => fetch('/webchat/session', {method: 'POST', headers: {'Content-Type': "
        "'application/json'}, body: JSON.stringify({token: localStorage.getItem("
        "'brightline-chat-token')})}).then(r => r.json()).then(b => b.conversation_id)"
    )
    assert [r.rating for r in await store.csat_for(conversation_id)] == [5]

    # A reload keeps the conversation: the history comes back from the server.
    await shop.reload()
    await shop.get_by_test_id("blw-launcher").click()
    await expect(shop.locator("[data-testid=blw-msg][data-sender=agent]")).to_have_count(
        1, timeout=15_000
    )
    assert errors == [], errors
    (SHOTS / "timings.txt").write_text(
        f"handoff click -> queue row live in the open console: {handoff_visible_s * 1000:.0f} ms\n"
        f"agent send click -> reply visible in widget: {reply_visible_s * 1000:.0f} ms\n"
    )
