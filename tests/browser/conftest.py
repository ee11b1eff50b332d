"""The browser tests' Chromium: Debian's, driven by Playwright (no browser download)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from bot.appkeys import DESK, SERVICE, STORE
from bot.core.models import Conversation
from bot.core.state import ConversationState
from handoff.auth import hash_password
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway
from tests.helpers import dead_port

SHOTS = Path(__file__).resolve().parents[2] / "var" / "test-results" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(
            "Debian chromium is missing: `make setup` installs it (apt-get install chromium)"
        )
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        await b.close()


# Uncaught script errors on any console page a test opened with ``signed_in``; each test that
# uses it fails if there was one.
PAGE_ERRORS: list[str] = []


@pytest.fixture
def page_errors() -> Iterator[list[str]]:
    PAGE_ERRORS.clear()
    yield PAGE_ERRORS
    assert PAGE_ERRORS == []


async def signed_in(
    browser: Browser,
    base_url: str,
    username: str,
    password: str,
    height: int = 900,
    init_script: str | None = None,
) -> Page:
    """A new browser context signed in to the console as ``username``, on the queue page;
    ``init_script`` runs in every page of it before the page's own scripts."""
    context = await browser.new_context(viewport={"width": 1400, "height": height})
    if init_script is not None:
        await context.add_init_script(init_script)
    page = await context.new_page()
    page.on("pageerror", lambda exc: PAGE_ERRORS.append(f"{username}: {exc}"))
    await page.goto(base_url + "/console/login")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()
    await page.wait_for_url("**/console")
    return page


@asynccontextmanager
async def gateway_without_bot(tmp: Path, *agents: str) -> AsyncIterator[Gateway]:
    """A gateway whose Rasa is a closed port (no bot needed), with these agents (usernames;
    the display name is the username capitalised) besides the demo supervisor Sam."""
    settings = gateway_settings(tmp, f"http://127.0.0.1:{dead_port()}", None)
    async with running_gateway(settings) as gw:
        for username in agents:
            await gw.app[STORE].add_agent(
                username, username.capitalize(), hash_password(AGENT_PASSWORD)
            )
        yield gw


async def shop_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """The demo shop with the widget open, and the page's uncaught script errors."""
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, accept_downloads=True
    )
    shop = await context.new_page()
    errors: list[str] = []
    shop.on("pageerror", lambda exc: errors.append(str(exc)))
    await shop.goto(url + "/")
    await shop.get_by_test_id("blw-launcher").click()
    return shop, errors


async def sam_took_over(gateway: Gateway, shop: Page, text: str) -> Conversation:
    """The customer writes ``text`` in the widget (Rasa is down), and Sam takes it over."""
    await shop.get_by_test_id("blw-input").fill(text)
    await shop.get_by_test_id("blw-send").click()
    await expect(shop.locator("[data-testid=blw-msg][data-sender=customer]")).to_have_count(1)
    await gateway.app[SERVICE].drain()
    (conversation,) = await gateway.app[STORE].conversations_in_states(list(ConversationState))
    sam = await gateway.app[STORE].agent_by_username("sam")
    assert sam is not None
    await gateway.app[DESK].take_over(conversation.id, sam)
    return conversation
