"""One schedule: the real bot answers about opening hours from the gateway's ``hours:``, and a
handoff outside them says when the team opens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.appkeys import SERVICE, STORE
from bot.core.state import ConversationState
from scripts import devctl
from tests.gateway_fixtures import Gateway, gateway_settings, running_gateway
from tests.helpers import CustomerClient

pytestmark = pytest.mark.e2e

EVERY_DAY = {day: "00:00-23:59" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
async def closed_today(rasa_stack: devctl.Stack, tmp_path: Path) -> AsyncIterator[Gateway]:
    """Open every day, but today is a holiday: closed now, open again tomorrow at 00:00."""
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    hours = {
        "always_open": False,
        "timezone": "Europe/Berlin",
        "schedule": EVERY_DAY,
        "holidays": [today.isoformat()],
    }
    settings = gateway_settings(tmp_path, rasa_stack.rasa_url, rasa_stack.token, hours=hours)
    async with running_gateway(settings) as gw:
        yield gw


async def test_the_bot_and_the_queue_read_the_gateways_hours(
    closed_today: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await CustomerClient(closed_today.url, http).connect()
    try:
        answer = await customer.say("what are your opening hours?", "support team")
        assert "Monday to Sunday 00:00-23:59 (Europe/Berlin time)" in answer["text"]
        assert "open again tomorrow at 00:00" in answer["text"]
        notice = await customer.say("I want to talk to a person", "opens again")
        assert "Our team opens again tomorrow at 00:00 (Europe/Berlin time)" in notice["text"]
        await closed_today.app[SERVICE].drain()
        conversation = await closed_today.app[STORE].conversation(customer.conversation_id or "")
        assert conversation is not None
        assert conversation.state is ConversationState.PENDING_FOLLOWUP
    finally:
        await customer.close()


async def test_an_always_open_team_is_never_called_offline(
    rasa_stack: devctl.Stack, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    settings = gateway_settings(tmp_path, rasa_stack.rasa_url, rasa_stack.token)
    async with running_gateway(settings) as gw:
        customer = await CustomerClient(gw.url, http).connect()
        try:
            answer = await customer.say("when is your support team available?", "around the clock")
            assert "offline" not in answer["text"]
        finally:
            await customer.close()
