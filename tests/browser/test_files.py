"""Pictures and files in Chromium, both ways: a customer's photo from the widget shown to the
agent, a PDF from the agent downloaded by the customer, a refused SVG explained in the widget,
and a real Rasa bot's image response (the fixture bot's, like Rasa's starter bot) drawn in the
widget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Route, expect

from scripts import devctl
from tests.browser.conftest import SHOTS, gateway_without_bot, sam_took_over, shop_page, signed_in
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway
from tests.helpers import png_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.usefixtures("page_errors")]

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with gateway_without_bot(tmp_path) as gw:
        yield gw


async def image_drawn(page: Page, selector: str) -> bool:
    """Whether the image was loaded and decoded (a broken image has no natural width)."""
    return bool(
        await page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")
    )


async def test_a_photo_in_and_a_pdf_out(gateway: Gateway, browser: Browser, tmp_path: Path) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    shop, errors = await shop_page(browser, gateway.url)
    conversation = await sam_took_over(gateway, shop, "my screen cracked")

    console = await signed_in(browser, gateway.url, "sam", AGENT_PASSWORD)
    await console.goto(f"{gateway.url}/console/conversations/{conversation.id}")
    await expect(console.get_by_test_id("live-status")).to_have_text("Live", timeout=15_000)

    # An SVG is refused in the widget with the reason, next to it; nothing reaches the agent.
    await shop.get_by_test_id("blw-file-input").set_input_files(
        files=[{"name": "drawing.svg", "mimeType": "image/svg+xml", "buffer": SVG}]
    )
    failed = shop.get_by_test_id("blw-upload").filter(has_text="drawing.svg")
    await expect(failed.get_by_test_id("blw-status")).to_contain_text(
        "a web page or script can't be sent here"
    )
    await shop.screenshot(path=str(SHOTS / "widget-upload-refused.png"))

    # The photo: shown in the widget, then in the console, drawn (not a broken image).
    photo = png_bytes(160, 90, (220, 60, 60))
    await shop.get_by_test_id("blw-file-input").set_input_files(
        files=[{"name": "cracked.png", "mimeType": "image/png", "buffer": photo}]
    )
    widget_image = shop.locator("[data-sender=customer] [data-testid=blw-image]")
    await expect(widget_image).to_have_count(1)
    await expect(shop.get_by_test_id("blw-upload")).to_have_count(1)  # only the refused one
    console_image = console.get_by_test_id("msg-image")
    await expect(console_image).to_have_count(1, timeout=10_000)
    await expect(console_image).to_have_attribute("alt", "cracked.png")
    for _ in range(50):  # (the console's CSP allows no string eval: wait_for_function fails)
        if await image_drawn(console, "[data-testid=msg-image]"):
            break
        await console.wait_for_timeout(100)
    assert await image_drawn(console, "[data-testid=msg-image]")
    await console.screenshot(path=str(SHOTS / "console-customer-photo.png"))

    # The agent attaches a PDF guide; the customer downloads exactly those bytes.
    await console.get_by_test_id("reply-file").set_input_files(
        files=[{"name": "Setup guide.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    await expect(
        console.locator("[data-sender=agent] [data-testid=msg-attachment]")
    ).to_contain_text("File: Setup guide.pdf")
    link = shop.locator("[data-sender=agent] [data-testid=blw-attachment]")
    await expect(link).to_contain_text("Setup guide.pdf")
    await expect(link).to_have_attribute("download", "Setup guide.pdf")
    await shop.screenshot(path=str(SHOTS / "widget-files.png"))
    async with shop.expect_download() as download_info:
        await link.click()
    download = await download_info.value
    target = tmp_path / "downloaded.pdf"
    await download.save_as(target)
    assert target.read_bytes() == PDF
    assert download.suggested_filename == "Setup guide.pdf"
    assert await image_drawn(shop, "[data-sender=customer] [data-testid=blw-image]")
    assert errors == []


async def test_a_rasa_image_response_is_drawn_in_the_widget(
    fixture_stack: devctl.Stack, browser: Browser, tmp_path: Path
) -> None:
    """The fixture bot answers "cheer me up" like Rasa's starter bot: a text, then an ``image:``
    response with an https address. The address is answered here by the test (no internet)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    settings = gateway_settings(tmp_path, fixture_stack.rasa_url, fixture_stack.token)
    async with running_gateway(settings) as gw:
        shop, errors = await shop_page(browser, gw.url)
        picture = png_bytes(120, 80, (250, 200, 40))
        served: list[str] = []

        async def image_host(route: Route) -> None:
            served.append(route.request.url)
            await route.fulfill(status=200, content_type="image/png", body=picture)

        await shop.route("https://images.example.test/**", image_host)
        await shop.get_by_test_id("blw-input").fill("cheer me up")
        await shop.get_by_test_id("blw-send").click()
        bot = shop.locator("[data-testid=blw-msg][data-sender=bot]")
        await expect(bot.first).to_contain_text(
            "Here is something to cheer you up:", timeout=20_000
        )
        image = shop.locator("[data-sender=bot] [data-testid=blw-image]")
        await expect(image).to_have_count(1)
        await expect(image).to_have_attribute("src", "https://images.example.test/cheer-up.png")
        for _ in range(50):
            if await image_drawn(shop, "[data-sender=bot] [data-testid=blw-image]"):
                break
            await shop.wait_for_timeout(100)
        assert await image_drawn(shop, "[data-sender=bot] [data-testid=blw-image]")
        assert served == ["https://images.example.test/cheer-up.png"]
        await shop.screenshot(path=str(SHOTS / "widget-bot-image.png"))
        assert errors == []
