"""The widget near the gateway's message limit, in Chromium: a counter shows how much is left,
then by how much the text is too long; send is disabled and nothing is lost; a message the
gateway refuses anyway is marked where the customer can see it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import SHOTS
from tests.gateway_fixtures import Gateway, gateway_settings, running_gateway
from tests.helpers import dead_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

LIMIT = 60


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = gateway_settings(
        tmp_path, f"http://127.0.0.1:{dead_port()}", None, limits={"max_message_chars": LIMIT}
    )
    async with running_gateway(settings) as gw:
        yield gw


async def test_the_counter_warns_before_the_limit_and_keeps_a_too_long_text(
    gateway: Gateway, browser: Browser
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(gateway.url + "/")
    await page.get_by_test_id("blw-launcher").click()
    box, counter, send = (
        page.get_by_test_id("blw-input"),
        page.get_by_test_id("blw-counter"),
        page.get_by_test_id("blw-send"),
    )
    await box.fill("hello")
    await page.get_by_test_id("blw-send").click()  # opens the session, which says the limit
    await expect(page.locator("[data-testid=blw-msg][data-sender=customer]")).to_have_count(1)

    await box.fill("x" * 40)
    await expect(counter).to_be_hidden()
    await box.fill("x" * 50)
    await expect(counter).to_have_text(f"50 / {LIMIT}")
    await box.fill("\N{GRINNING FACE}" * 50)  # one character each, as the gateway counts
    await expect(counter).to_have_text(f"50 / {LIMIT}")
    await expect(send).to_be_enabled()

    too_long = "my speaker crackles " * 4  # 80 characters, 79 once trimmed
    await box.fill(too_long)
    await expect(counter).to_have_text(f"Too long by 19 characters (the limit is {LIMIT}).")
    await expect(counter).to_be_in_viewport()
    await expect(send).to_be_disabled()
    await box.press("Enter")
    await expect(box).to_have_value(too_long)  # nothing typed is lost
    await page.screenshot(path=str(SHOTS / "widget-too-long.png"))
    await expect(page.locator("[data-testid=blw-msg][data-sender=customer]")).to_have_count(1)

    await box.fill("my speaker crackles at high volume")
    await expect(counter).to_be_hidden()
    await send.click()
    await expect(page.locator("[data-testid=blw-msg][data-sender=customer]")).to_have_count(2)

    # A message sent past the box (the page's own API) is refused by the gateway: the failed
    # message says why and is scrolled into view, and its text is back in the box.
    await page.evaluate("(t) => window.BrightlineChat.send(t)", "y" * (LIMIT + 5))
    failed = page.locator("[data-testid=blw-msg][data-sender=customer].blw-failed")
    await expect(failed).to_contain_text(f"the limit is {LIMIT}")
    await expect(failed).to_be_in_viewport()
    await expect(box).to_have_value("y" * (LIMIT + 5))
    await expect(counter).to_contain_text("Too long by 5 characters")
    assert errors == []
