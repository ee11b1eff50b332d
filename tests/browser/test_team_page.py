"""The console's team page, in Chromium: a supervisor puts an agent in a team, gives skills and
a capacity, and saves; what is saved is what routing uses. An agent sees it read-only; a bad
capacity is refused with a message and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from bot.appkeys import STORE
from tests.browser.conftest import SHOTS, gateway_without_bot, signed_in
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.usefixtures("page_errors")]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with gateway_without_bot(tmp_path, "kim") as gw:
        yield gw


async def team_page(browser: Browser, gateway: Gateway, username: str) -> Page:
    page = await signed_in(browser, gateway.url, username, AGENT_PASSWORD, height=700)
    await page.get_by_test_id("nav-team").click()
    await page.wait_for_url("**/console/team")
    return page


async def test_a_supervisor_sets_an_agents_teams_skills_and_capacity(
    gateway: Gateway, browser: Browser
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = await team_page(browser, gateway, "sam")
    kim = page.get_by_test_id("agent-row").filter(has_text="@kim")
    await expect(kim).to_have_count(1)
    await expect(kim.get_by_test_id("agent-availability")).to_have_text("Away")  # no console

    await kim.get_by_label("Technical support").check()
    await kim.get_by_test_id("agent-skills").fill("Wifi, speakers")
    await kim.get_by_test_id("agent-capacity").fill("500")
    await kim.get_by_test_id("agent-save").click()
    await expect(page.get_by_test_id("flash")).to_contain_text("capacity must be")
    stored = await gateway.app[STORE].agent_by_username("kim")
    assert stored is not None and stored.capacity == 3 and stored.skills == []

    await kim.get_by_test_id("agent-capacity").fill("2")
    await kim.get_by_test_id("agent-save").click()
    await expect(page.get_by_test_id("flash")).to_contain_text("Saved Kim.")
    stored = await gateway.app[STORE].agent_by_username("kim")
    assert stored is not None
    assert (sorted(stored.teams), stored.skills, stored.capacity) == (
        ["general", "tech_support"],
        ["speakers", "wifi"],
        2,
    )
    await expect(kim.get_by_test_id("agent-skills")).to_have_value("speakers, wifi")
    await page.screenshot(path=str(SHOTS / "console-team-page.png"), full_page=True)


async def test_an_agent_reads_the_team_page_but_cannot_change_it(
    gateway: Gateway, browser: Browser
) -> None:
    page = await team_page(browser, gateway, "kim")
    rows = page.get_by_test_id("agent-row")
    await expect(rows).to_have_count(2)
    await expect(rows.first.get_by_test_id("agent-capacity")).to_be_disabled()
    await expect(page.get_by_test_id("agent-save")).to_have_count(0)
    # Kim's own console is open now: Kim is online.
    me = rows.filter(has_text="@kim")
    await expect(me.get_by_test_id("agent-availability")).to_have_text("Online", timeout=10_000)
