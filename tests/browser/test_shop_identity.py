"""Customer verification in a real Chromium: the demo shop signs a visitor in, the widget passes
the shop's signed user id, the bot answers for that customer's orders only, and the agent's
context card says how the customer was verified. Screenshots go to
var/test-results/screenshots/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Response,
    expect,
)

from scripts import devctl
from tests.browser.conftest import SHOTS
from tests.browser.test_widget_and_console import (
    customer_says,
)
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway
from tests.helpers import listen

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SHOP_SECRET = "browser-test-shop-secret-0123456789"
SECOND_FACTOR = "To keep your details safe, please confirm it's yours"
MAYA_ORDER = "Order 1001 (Aurora Speaker)"
BOT_TIMEOUT = 30_000
ZEROS = "0" * 64
# Another shop's page that embeds the widget with a hash that is not the shop secret's.
TAMPERED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Another shop</title></head><body><h1>Another shop</h1>
<script src="{gateway}/widget.js" data-user-id="1" data-user-hash="{hash}" async></script>
</body></html>"""
UI_TIMEOUT = 15_000


@pytest.fixture
async def gateway(rasa_stack: devctl.Stack, tmp_path: Path) -> AsyncIterator[Gateway]:
    """The gateway with a shop secret and the demo shop's sign-in menu turned on."""
    settings = gateway_settings(
        tmp_path,
        rasa_stack.rasa_url,
        rasa_stack.token,
        identity={"shop_secret": SHOP_SECRET, "demo_sign_in": True},
    )
    assert settings.identity.shop_secret == SHOP_SECRET and settings.identity.demo_sign_in
    async with running_gateway(settings) as gw:
        yield gw


def bot_says(page: Page, text: str) -> Locator:
    return page.locator("[data-testid=blw-msg][data-sender=bot]").filter(has_text=text)


async def new_page(browser: Browser, errors: list[str], width: int = 1280) -> Page:
    page = await (await browser.new_context(viewport={"width": width, "height": 860})).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page


async def open_widget(shop: Page) -> None:
    await shop.locator("#open-chat").click()
    await expect(shop.get_by_test_id("blw-panel")).to_be_visible()


async def ask_about_maya_order_unverified(shop: Page) -> None:
    """Ask for order 1001 without being verified: the bot asks for the second factor and shows
    nothing of the order."""
    await customer_says(shop, "where is my order 1001?")
    await expect(bot_says(shop, SECOND_FACTOR)).to_have_count(1, timeout=BOT_TIMEOUT)
    log = shop.get_by_test_id("blw-log")
    await expect(log).not_to_contain_text(MAYA_ORDER)
    await expect(log).not_to_contain_text("JD014600003827")  # order 1001's tracking number


async def console_login(browser: Browser, gateway: Gateway, errors: list[str]) -> Page:
    console = await new_page(browser, errors, width=1400)
    await console.goto(gateway.url + "/console/login")
    await console.get_by_test_id("login-username").fill("sam")
    await console.get_by_test_id("login-password").fill(AGENT_PASSWORD)
    await console.get_by_test_id("login-submit").click()
    await expect(console.get_by_test_id("queue-row")).to_have_count(0)
    return console


async def hand_off_and_claim(shop: Page, console: Page) -> Locator:
    """The customer asks for a person; the agent claims the conversation. The context card."""
    await customer_says(shop, "I want to talk to a person")
    await expect(shop.get_by_test_id("blw-queue")).to_be_visible(timeout=BOT_TIMEOUT)
    row = console.get_by_test_id("queue-row")
    await expect(row).to_have_count(1, timeout=UI_TIMEOUT)
    await row.first.get_by_test_id("claim-button").click()
    card = console.get_by_test_id("context-card")
    await expect(card).to_be_visible(timeout=UI_TIMEOUT)
    return card


def session_answers(page: Page) -> list[Response]:
    """Every response to POST /webchat/session on this page, in order."""
    seen: list[Response] = []
    page.on(
        "response",
        lambda r: seen.append(r) if r.url.endswith("/webchat/session") else None,
    )
    return seen


async def test_signed_in_customer_gets_own_orders_and_a_verified_card(
    gateway: Gateway, browser: Browser
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    console = await console_login(browser, gateway, errors)
    shop = await new_page(browser, errors)
    sessions = session_answers(shop)

    await shop.goto(gateway.url + "/")
    await expect(shop.get_by_test_id("signed-in")).to_have_count(0)
    await shop.get_by_test_id("sign-in").click()
    await shop.get_by_test_id("sign-in-1").click()
    await shop.wait_for_url(re.compile(r"/\?customer=1$"))
    await expect(shop.get_by_test_id("signed-in")).to_have_text("Hi, Maya")
    await expect(shop.get_by_test_id("sign-out")).to_have_attribute("href", "/")
    await expect(shop.get_by_test_id("sign-in")).to_have_count(0)

    await open_widget(shop)
    await customer_says(shop, "where is my order 1001?")
    await expect(bot_says(shop, MAYA_ORDER)).to_have_count(1, timeout=BOT_TIMEOUT)
    await expect(bot_says(shop, MAYA_ORDER)).to_contain_text("JD014600003827")
    await expect(bot_says(shop, SECOND_FACTOR)).to_have_count(0)
    verified = [await r.json() for r in sessions if r.ok]
    assert verified and all(body["verified"] is True for body in verified), verified

    # Someone else's order (Jonas's) does not exist for Maya, and nothing of it leaks.
    await customer_says(shop, "where is my order 1002?")
    await expect(bot_says(shop, "couldn't find order 1002 on your account")).to_have_count(
        1, timeout=BOT_TIMEOUT
    )
    log = shop.get_by_test_id("blw-log")
    for leak in ("Nova Phone", "1Z999AA10123456784", "UPS", "Jonas"):
        await expect(log).not_to_contain_text(leak)
    await expect(bot_says(shop, SECOND_FACTOR)).to_have_count(0)
    await shop.screenshot(path=str(SHOTS / "identity-widget-signed-in.png"))

    card = await hand_off_and_claim(shop, console)
    await expect(card.get_by_test_id("verified-badge")).to_have_text(
        "Verified · signed in to the shop"
    )
    await expect(card.get_by_test_id("verified-badge")).to_have_attribute(
        "title", re.compile(r"Shop customer 1\b")
    )
    await expect(card.get_by_test_id("vip-badge")).to_have_count(0)  # Maya is not a VIP
    await expect(shop.get_by_test_id("blw-panel")).to_contain_text("Sam", timeout=UI_TIMEOUT)
    await console.screenshot(path=str(SHOTS / "identity-console-card.png"), full_page=True)
    assert errors == [], errors


async def test_sign_out_starts_a_new_unverified_conversation(
    gateway: Gateway, browser: Browser
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    shop = await new_page(browser, errors)
    sessions = session_answers(shop)
    await shop.goto(gateway.url + "/?customer=1")
    await expect(shop.get_by_test_id("signed-in")).to_have_text("Hi, Maya")
    await open_widget(shop)
    await customer_says(shop, "where is my order 1001?")
    await expect(bot_says(shop, MAYA_ORDER)).to_have_count(1, timeout=BOT_TIMEOUT)
    maya = await sessions[-1].json()
    assert maya["verified"] is True

    # Control: still signed in, a reload resumes the conversation with its history.
    await shop.reload()
    await expect(shop.get_by_test_id("blw-panel")).to_be_visible()  # stays open across pages
    await expect(bot_says(shop, MAYA_ORDER)).to_have_count(1, timeout=UI_TIMEOUT)
    resumed = await sessions[-1].json()
    assert resumed["conversation_id"] == maya["conversation_id"] and resumed["verified"] is True

    await shop.get_by_test_id("sign-out").click()
    await shop.wait_for_url(gateway.url + "/")
    await expect(shop.get_by_test_id("signed-in")).to_have_count(0)
    await expect(shop.get_by_test_id("blw-panel")).to_be_visible()
    await ask_about_maya_order_unverified(shop)
    after = await sessions[-1].json()
    assert after["verified"] is False
    assert after["conversation_id"] != maya["conversation_id"]
    assert after["token"] != maya["token"]
    # Only the new conversation is in the widget: the one question just asked, none of Maya's.
    await expect(shop.locator("[data-testid=blw-msg][data-sender=customer]")).to_have_count(1)
    await expect(bot_says(shop, MAYA_ORDER)).to_have_count(0)
    await shop.screenshot(path=str(SHOTS / "identity-widget-signed-out.png"))
    assert errors == [], errors


async def test_tampered_user_hash_is_refused_and_chat_stays_anonymous(
    gateway: Gateway, browser: Browser
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    console = await console_login(browser, gateway, errors)
    shop = await new_page(browser, errors)
    logged: list[ConsoleMessage] = []
    shop.on("console", lambda message: logged.append(message))
    sessions = session_answers(shop)
    # A page on another origin, as a shop embeds the widget, whose hash is not the secret's.
    page = web.Application()

    async def tampered(_: web.Request) -> web.Response:
        html = TAMPERED_PAGE.format(gateway=gateway.url, hash=ZEROS)
        return web.Response(text=html, content_type="text/html")

    page.router.add_get("/", tampered)
    runner = web.AppRunner(page)
    await runner.setup()
    try:
        port = await listen(runner)
        await shop.goto(f"http://127.0.0.1:{port}/")
        await check_tampered_page(shop, console, logged, sessions, errors)
    finally:
        await runner.cleanup()


async def check_tampered_page(
    shop: Page,
    console: Page,
    logged: list[ConsoleMessage],
    sessions: list[Response],
    errors: list[str],
) -> None:
    await shop.wait_for_function(
        "() => Boolean(window.BrightlineChat && window.BrightlineChat.root)"
    )
    await shop.evaluate("window.BrightlineChat.open()")
    await expect(shop.get_by_test_id("blw-panel")).to_be_visible()
    await ask_about_maya_order_unverified(shop)
    await shop.screenshot(path=str(SHOTS / "identity-widget-tampered.png"))

    refusals = [m.text for m in logged if m.type == "error" and "refused" in m.text]
    assert len(refusals) == 1, [m.text for m in logged]
    assert refusals[0].startswith("Brightline chat: the signed-in user was refused: ")
    assert "does not match" in refusals[0]
    statuses = [r.status for r in sessions]
    assert statuses[:2] == [403, 200], statuses
    assert (await sessions[0].json())["error"] == "identity_rejected"
    assert (await sessions[1].json())["verified"] is False

    card = await hand_off_and_claim(shop, console)
    await expect(card.get_by_test_id("verified-badge")).to_have_text("Not verified")
    await expect(card.get_by_test_id("vip-badge")).to_have_count(0)
    assert errors == [], errors


async def test_anonymous_customer_verifies_with_the_second_factor(
    gateway: Gateway, browser: Browser
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    console = await console_login(browser, gateway, errors)
    shop = await new_page(browser, errors)
    await shop.goto(gateway.url + "/")
    await open_widget(shop)
    await ask_about_maya_order_unverified(shop)

    await customer_says(shop, "maya.patel@example.com")
    await expect(bot_says(shop, "Thanks, Maya, that matches our records.")).to_have_count(
        1, timeout=BOT_TIMEOUT
    )
    await expect(bot_says(shop, MAYA_ORDER)).to_have_count(1, timeout=BOT_TIMEOUT)
    await expect(bot_says(shop, MAYA_ORDER)).to_contain_text("JD014600003827")
    await shop.screenshot(path=str(SHOTS / "identity-widget-second-factor.png"))

    card = await hand_off_and_claim(shop, console)
    await expect(card.get_by_test_id("verified-badge")).to_have_text(
        "Verified · order or device check"
    )
    await console.screenshot(
        path=str(SHOTS / "identity-console-card-second-factor.png"), full_page=True
    )
    assert errors == [], errors


async def test_signed_in_vip_is_flagged_on_the_card(gateway: Gateway, browser: Browser) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    console = await console_login(browser, gateway, errors)
    shop = await new_page(browser, errors)
    await shop.goto(gateway.url + "/")
    await shop.get_by_test_id("sign-in").click()
    await shop.get_by_test_id("sign-in-2").click()
    await expect(shop.get_by_test_id("signed-in")).to_have_text("Hi, Jonas")
    await open_widget(shop)

    card = await hand_off_and_claim(shop, console)
    await expect(card.get_by_test_id("verified-badge")).to_have_text(
        "Verified · signed in to the shop"
    )
    await expect(card.get_by_test_id("ctx-priority")).to_contain_text("high")  # the bot knew
    await console.screenshot(path=str(SHOTS / "identity-console-card-vip.png"), full_page=True)
    await expect(card.get_by_test_id("vip-badge")).to_have_text("VIP")
    assert errors == [], errors
