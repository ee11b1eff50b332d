"""Per-team opening hours: the bot's answers read the default team's schedule, and a handoff
the routing rules send to a closed team waits as a follow-up while an open team queues at once."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bot.appkeys import SERVICE, STORE
from bot.core.state import ConversationState
from tests.fakes.rasa import ScriptedRasa
from tests.gateway_fixtures import scripted_gateway
from tests.helpers import CustomerClient

CLOSED = {"always_open": False, "timezone": "Europe/Berlin", "schedule": {}}  # never open


async def test_each_team_keeps_its_own_hours_and_the_bot_reads_the_default_teams(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    rasa = ScriptedRasa(
        {"a person please": ("request_human", 0.99), "I want to complain": ("complaint", 0.99)}
    )
    queue = {
        "default_team": "front",
        "teams": [{"name": "front", "hours": CLOSED}, {"name": "experts"}],
        "routing": [{"team": "experts", "intents": ["complaint"]}],
    }
    async with scripted_gateway(tmp_path, rasa, queue=queue) as gw:
        store = gw.app[STORE]
        plain = await CustomerClient(gw.url, http).connect()
        angry = await CustomerClient(gw.url, http).connect()
        try:
            await plain.say("a person please", "a person will reply here as soon as")
            assert rasa.metadata[0]["support_hours"]["open_now"] is False  # front's hours
            await angry.say("I want to complain", "in the queue for a person")
            await gw.app[SERVICE].drain()
            states = {}
            for customer in (plain, angry):
                conversation = await store.conversation(customer.conversation_id or "")
                assert conversation is not None
                states[conversation.team] = conversation.state
            assert states == {
                "front": ConversationState.PENDING_FOLLOWUP,
                "experts": ConversationState.QUEUED,  # the gateway's hours: always open
            }
        finally:
            await plain.close()
            await angry.close()
