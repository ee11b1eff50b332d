"""Teams, availability and SLAs in the console, in Chromium, as agents use them: the availability
switch decides whether a push team assigns to you, the team tabs split the queue, each row
counts down to its SLA target and turns red when it is missed (and the breach escalates it to
the next tier), and a conversation can be sent to another team's queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from bot.appkeys import BROKER, DESK, SERVICE, STORE
from bot.core.policy import HandoffDecision
from bot.core.state import ConversationState
from handoff.auth import hash_password
from tests.browser.conftest import PAGE_ERRORS, SHOTS, signed_in
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway
from tests.helpers import CustomerClient, dead_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.usefixtures("page_errors")]


def settings(tmp: Path, first_response_minutes: float) -> Any:
    dead = f"http://127.0.0.1:{dead_port()}"
    return gateway_settings(
        tmp,
        dead,
        None,
        rasa={"urls": [dead], "retry_seconds": 0.5},
        queue={
            "default_team": "front",
            "teams": [
                {
                    "name": "front",
                    "display_name": "Front line",
                    "assignment": "push",
                    "escalate_to": "experts",
                },
                {"name": "experts", "display_name": "Experts"},
            ],
        },
        sla=[
            {
                "teams": ["front"],
                "first_response_minutes": first_response_minutes,
                "business_hours": False,
                "on_breach": ["notify", "escalate"],
            }
        ],
    )


async def console(browser: Browser, gateway: Gateway, username: str) -> Page:
    page = await signed_in(browser, gateway.url, username, AGENT_PASSWORD)
    await expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=15_000)
    return page


async def handed_over(gateway: Gateway, http: aiohttp.ClientSession, text: str) -> CustomerClient:
    """A web customer whose message the gateway's policy hands to a person (the bot is down)."""
    customer = await CustomerClient(gateway.url, http).connect()
    await customer.send(text)
    await customer.wait_for(lambda f: f.get("type") == "ack")
    await gateway.app[SERVICE].drain()
    conversation = await gateway.app[STORE].conversation(customer.conversation_id or "")
    assert conversation is not None
    await gateway.app[DESK].starter.start(
        conversation, HandoffDecision(policy_reason="explicit_request"), None
    )
    return customer


async def test_the_availability_switch_decides_who_gets_pushed_and_team_tabs_count(
    tmp_path: Path, browser: Browser, http: aiohttp.ClientSession
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with running_gateway(settings(tmp_path, 30)) as gateway:
        await gateway.app[STORE].add_agent(
            "ada", "Ada", hash_password(AGENT_PASSWORD), teams=["front"]
        )
        page = await console(browser, gateway, "ada")
        switch = page.get_by_test_id("availability")
        await expect(switch).to_have_value("online")
        await switch.select_option("away")
        await expect(page.get_by_test_id("flash")).to_contain_text("You're away")

        customer = await handed_over(gateway, http, "I want to talk to a person")
        try:
            row = page.get_by_test_id("queue-row")
            await expect(row).to_have_count(1, timeout=10_000)  # away: not pushed to Ada
            await expect(row).to_contain_text("Front line")
            tabs = page.get_by_test_id("team-tab")
            await expect(tabs.filter(has_text="Front line")).to_contain_text("1")
            await expect(tabs.filter(has_text="Experts")).to_contain_text("0")
            breach = row.get_by_test_id("time-to-breach")
            await expect(breach).to_contain_text("29m")
            await page.screenshot(path=str(SHOTS / "console-team-queues.png"), full_page=True)
            # Nobody of the team is online: the customer is told the wait is unknown.
            await customer.wait_for(lambda f: "can't estimate the wait" in f.get("text", ""))

            await tabs.filter(has_text="Experts").click()
            await expect(page.get_by_test_id("queue-row")).to_have_count(0)
            await tabs.filter(has_text="All teams").click()

            await switch.select_option("online")  # Ada is back: the conversation is hers
            await expect(page.get_by_test_id("my-conversation-row")).to_have_count(
                1, timeout=10_000
            )
            await expect(page.get_by_test_id("queue-row")).to_have_count(0)
            await customer.wait_for(
                lambda f: f.get("text") == "Ada from Front line joined the conversation."
            )
            await page.screenshot(path=str(SHOTS / "console-availability.png"), full_page=True)
        finally:
            await customer.close()


async def test_a_missed_target_turns_red_escalates_and_a_team_transfer_moves_it_back(
    tmp_path: Path, browser: Browser, http: aiohttp.ClientSession
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with running_gateway(settings(tmp_path, 0.05)) as gateway:  # 3 seconds
        await gateway.app[STORE].add_agent(
            "kim", "Kim", hash_password(AGENT_PASSWORD), teams=["experts"]
        )
        page = await console(browser, gateway, "kim")
        customer = await handed_over(gateway, http, "nobody answers me")
        try:
            row = page.get_by_test_id("queue-row")
            await expect(row).to_have_count(1, timeout=10_000)
            # Nobody in the front line: the target is missed, the row escalates to Experts.
            await expect(row).to_contain_text("Experts", timeout=15_000)
            await expect(row.get_by_test_id("time-to-breach")).to_contain_text("missed")
            await expect(row.get_by_test_id("time-to-breach")).to_have_class("num sla sla-breached")
            await expect(page.get_by_test_id("flash")).to_contain_text(
                "Front line: the first response target was missed."
            )
            await page.screenshot(path=str(SHOTS / "console-sla-breach.png"), full_page=True)

            await row.get_by_test_id("claim-button").click()
            await page.wait_for_url("**/console/conversations/**")
            select = page.get_by_test_id("transfer-select")
            await expect(
                select.locator("option", has_text="Front line (team queue)")
            ).to_be_enabled(timeout=10_000)
            await select.select_option(label="Front line (team queue)")
            await page.get_by_test_id("transfer-button").click()
            await expect(page.get_by_test_id("flash")).to_contain_text("Sent to Front line")
            notice = await customer.wait_for(
                lambda f: f.get("sender") == "system" and "passed you to" in f.get("text", "")
            )
            assert notice["text"].startswith("I've passed you to Front line")
            await page.screenshot(path=str(SHOTS / "console-team-transfer.png"), full_page=True)
            conversation = await gateway.app[STORE].conversation(customer.conversation_id or "")
            assert conversation is not None
            assert (conversation.state.value, conversation.team) == ("queued", "front")
        finally:
            await customer.close()


async def test_the_widgets_queue_line_and_bar_say_the_same_and_update_in_place(
    tmp_path: Path, browser: Browser, http: aiohttp.ClientSession
) -> None:
    """The chat line about the customer's place and the widget's bar are one sentence: when
    the customer ahead is taken, the line changes in place (no second line), and the bar with it."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with running_gateway(settings(tmp_path, 30)) as gateway:
        store = gateway.app[STORE]
        ahead = await handed_over(gateway, http, "first in line")
        shop = await (await browser.new_context(viewport={"width": 1280, "height": 860})).new_page()
        shop.on("pageerror", lambda exc: PAGE_ERRORS.append(f"widget: {exc}"))
        try:
            await shop.goto(gateway.url + "/")
            await shop.get_by_test_id("blw-launcher").click()
            await shop.get_by_test_id("blw-input").fill("second in line")
            await shop.get_by_test_id("blw-send").click()
            await expect(
                shop.locator("[data-testid=blw-msg][data-sender=system]").first
            ).to_contain_text("technical problem", timeout=15_000)  # the bot is down
            mine = [
                c
                for c in await store.conversations_in_states([ConversationState.BOT])
                if c.id != ahead.conversation_id
            ]
            assert len(mine) == 1
            await gateway.app[DESK].starter.start(
                mine[0], HandoffDecision(policy_reason="explicit_request"), None
            )
            lines = shop.locator("[data-testid=blw-msg][data-sender=system]").filter(
                has_text="in the queue for a person"
            )
            bar = shop.get_by_test_id("blw-queue")
            await expect(lines).to_have_count(1, timeout=10_000)
            await expect(lines).to_contain_text("You're number 2 in the queue for a person")
            await expect(bar).to_contain_text("You're number 2 in the queue for a person")

            # An agent of the team comes online and takes the customer ahead (a push).
            ada = await store.add_agent(
                "ada", "Ada", hash_password(AGENT_PASSWORD), teams=["front"], capacity=1
            )
            await gateway.app[BROKER].set_presence(f"agent:{ada.id}", 60)
            await gateway.app[DESK].set_availability(ada, "online")
            await expect(lines).to_have_count(1)
            await expect(lines).to_contain_text(
                "You're number 1 in the queue for a person (about 4 minutes).", timeout=10_000
            )
            await expect(bar).to_have_text(
                "You're number 1 in the queue for a person (about 4 minutes)."
            )
            await shop.screenshot(path=str(SHOTS / "widget-queue-line.png"))
        finally:
            await ahead.close()
