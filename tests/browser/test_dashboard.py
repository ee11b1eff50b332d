"""The supervisors' dashboard in Chromium: live tiles and a period's figures after a real
handoff that a person resolved and the customer rated; changing the team and the dates
changes the figures; an agent is shown a notice instead."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
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
    async with gateway_without_bot(tmp_path, "kim") as gw:
        yield gw


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


async def drawn_pixels(page: Page, testid: str) -> int:
    """How many pixels of a canvas are not transparent (a chart drew something)."""
    return int(
        await page.get_by_test_id(testid).evaluate(
            """canvas => {
                const data = canvas.getContext("2d")
                    .getImageData(0, 0, canvas.width, canvas.height).data;
                let drawn = 0;
                for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) drawn++;
                return drawn;
            }"""
        )
    )


async def test_the_dashboard_shows_a_resolved_and_rated_handoff(
    gateway: Gateway, browser: Browser, http: aiohttp.ClientSession
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    desk = gateway.app[DESK]
    sam = await gateway.app[STORE].agent_by_username("sam")
    assert sam is not None
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.send("my parcel never came")
        await customer.wait_for(lambda f: f.get("type") == "ack")
        await gateway.app[SERVICE].drain()
        cid = customer.conversation_id or ""
        await desk.take_over(cid, sam)
        await desk.agent_reply(cid, sam, "I'm on it.")
        await desk.resolve(cid, sam)
        await customer.send("4", payload="csat:4")
        await customer.wait_for(lambda f: "Thank you for your feedback" in f.get("text", ""))

        page = await signed_in(browser, gateway.url, "sam", AGENT_PASSWORD)
        await page.get_by_test_id("nav-dashboard").click()
        await page.wait_for_url("**/console/dashboard")
        await expect(page.get_by_test_id("fig-conversations")).to_have_text("1")
        await expect(page.get_by_test_id("fig-handoffs")).to_contain_text("1 (100.0 %)")
        await expect(page.get_by_test_id("fig-containment")).to_have_text("0.0 %")
        await expect(page.get_by_test_id("fig-csat")).to_have_text("4.00 / 5 (1)")
        await expect(page.get_by_test_id("tile-waiting")).to_have_text("0")
        await expect(page.get_by_test_id("reason-row")).to_contain_text(["Agent takeover"])
        for chart in ("chart-volume", "chart-quality"):
            assert await drawn_pixels(page, chart) > 500, f"{chart} is blank"
        await page.screenshot(path=str(SHOTS / "console-dashboard.png"), full_page=True)

        async with page.expect_download() as download_info:
            await page.get_by_test_id("csv-daily").click()
        download = await download_info.value
        assert download.suggested_filename.startswith("dashboard-daily-")
        lines = read_lines(await download.path())
        assert lines[0].startswith("day,conversations,containment,handoffs")
        assert len(lines) == 1 + 7  # the last seven days, one row each
        today = datetime.now(UTC).date().isoformat()
        assert lines[-1].startswith(f"{today},1,0.0,1,")
        async with page.expect_download() as download_info:
            await page.get_by_test_id("csv-ratings").click()
        ratings = read_lines(await (await download_info.value).path())
        assert ratings == ["stars,ratings", "1,0", "2,0", "3,0", "4,1", "5,0"]
        async with page.expect_download() as download_info:
            await page.get_by_test_id("export-nlu").click()
        exported = await download_info.value
        assert exported.suggested_filename.startswith("nlu-")
        assert read_lines(await exported.path())[0].startswith("# Exported by")

        await page.get_by_test_id("dash-team").select_option(label="Orders and delivery")
        await expect(page.get_by_test_id("fig-handoffs")).to_contain_text("0")
        await expect(page.get_by_test_id("fig-csat")).to_have_text("—")
        await page.get_by_test_id("dash-team").select_option(label="All teams")
        await expect(page.get_by_test_id("fig-csat")).to_have_text("4.00 / 5 (1)")
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
        await page.get_by_test_id("dash-from").fill(tomorrow)
        await page.get_by_test_id("dash-to").fill(tomorrow)
        await page.get_by_role("button", name="Show").click()
        await expect(page.get_by_test_id("fig-conversations")).to_have_text("0")
        await expect(page.get_by_test_id("fig-containment")).to_have_text("—")
    finally:
        await customer.close()


async def test_an_agent_gets_a_notice_instead_of_the_dashboard(
    gateway: Gateway, browser: Browser
) -> None:
    page = await signed_in(browser, gateway.url, "kim", AGENT_PASSWORD)
    await expect(page.get_by_test_id("nav-dashboard")).to_have_count(0)
    await page.goto(gateway.url + "/console/dashboard")
    await expect(page.get_by_test_id("dash-forbidden")).to_contain_text("Only supervisors")
