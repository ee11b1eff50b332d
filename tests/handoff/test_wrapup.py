"""The wrap-up at resolve: the bot's topic before the handoff preselects what the problem was;
the agent's choice and "the bot should have handled this" are kept on the handoff and counted
on the dashboard. Bad choices get a 400 and resolve nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import aiohttp
import pytest

from bot.appkeys import SERVICE, STORE
from handoff.auth import hash_password
from handoff.packet import TranscriptEntry
from handoff.start import topic_intent
from tests.fakes.rasa import ScriptedRasa
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, scripted_gateway
from tests.helpers import AgentClient, CustomerClient

NLU = {
    "my speaker crackles": ("troubleshoot_sound", 0.91),
    "a person please": ("request_human", 0.99),
    "hello": ("greet", 0.98),
}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with scripted_gateway(tmp_path, ScriptedRasa(NLU)) as gw:
        await gw.app[STORE].add_agent("kim", "Kim", hash_password(AGENT_PASSWORD))
        yield gw


async def handed_over(gateway: Gateway, http: aiohttp.ClientSession, *texts: str) -> str:
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        for text in texts[:-1]:
            await customer.say(text, "ok")
        await customer.say(texts[-1], "queue")
        await gateway.app[SERVICE].drain()
        return customer.conversation_id or ""
    finally:
        await customer.close()


async def test_wrapup_is_suggested_kept_and_counted(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        sound = await handed_over(gateway, http, "my speaker crackles", "a person please")
        assert (await kim.api("POST", f"/conversations/{sound}/claim"))[0] == 200
        status, view = await kim.api("GET", f"/conversations/{sound}")
        assert view["handoff"]["intent"] == "troubleshoot_sound", "the topic, not 'a person'"
        assert view["wrapup"]["suggested"] == "technical_problem"
        assert view["wrapup"]["dispositions"][-1] == {"name": "other", "title": "Something else"}

        for body, message in (
            ({"disposition": "weather"}, "disposition must be one of"),
            ({"disposition": 7}, "disposition must be one of"),
            ({"disposition": []}, "disposition must be one of"),
            ({"disposition": {}}, "disposition must be one of"),
            ({"disposition": "account", "bot_should_have_handled": "yes"}, "true or false"),
        ):
            status, answer = await kim.api("POST", f"/conversations/{sound}/resolve", body)
            assert (status, message in answer["message"]) == (400, True), answer
        assert (await gateway.app[STORE].conversation(sound)).state.value == "assigned"  # type: ignore[union-attr]

        status, _ = await kim.api(
            "POST",
            f"/conversations/{sound}/resolve",
            {"disposition": "warranty_repair", "bot_should_have_handled": True},
        )
        assert status == 200
        (handoff,) = await gateway.app[STORE].handoffs_for_conversation(sound)
        assert (handoff.disposition, handoff.bot_should_have_handled) == ("warranty_repair", True)

        # Resolved without a wrap-up (an API client): the bot's suggestion is kept.
        plain = await handed_over(gateway, http, "hello", "a person please")
        assert (await kim.api("POST", f"/conversations/{plain}/claim"))[0] == 200
        assert (await kim.api("POST", f"/conversations/{plain}/resolve"))[0] == 200
        (handoff,) = await gateway.app[STORE].handoffs_for_conversation(plain)
        assert (handoff.intent, handoff.disposition) == (None, "other")
        assert handoff.bot_should_have_handled is False

        today = date.today().isoformat()
        assert (await kim.api("GET", f"/dashboard?from={today}&to={today}"))[0] == 403
        sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)  # a supervisor
        status, report = await sam.api("GET", f"/dashboard?from={today}&to={today}")
        period = report["period"]
        assert period["dispositions"] == {"other": 1, "warranty_repair": 1}
        assert period["bot_should_have_handled"] == 1
        assert period["handoffs_by_intent"] == {"(none understood)": 1, "troubleshoot_sound": 1}
        assert period["bot"]["messages"] == 4 and period["bot"]["fallbacks"] == 0
        async with sam.http.get(
            f"{gateway.url}/console/api/dashboard.csv?from={today}&to={today}&table=dispositions"
        ) as resp:
            assert resp.status == 200
            text = await resp.text()
        await sam.close()
        assert "warranty_repair,1" in text and "(the bot should have handled it),1" in text
    finally:
        await kim.close()


def entry(seq: int, intent: str | None, sender: str = "customer") -> TranscriptEntry:
    return TranscriptEntry(
        seq=seq, at="2026-11-28T10:00:00Z", sender=sender, text="…", intent=intent
    )  # type: ignore[arg-type]


def test_topic_intent_skips_yes_no_and_person_please() -> None:
    assert topic_intent([entry(1, "troubleshoot_sound"), entry(2, "deny"), entry(3, "affirm")]) == (
        "troubleshoot_sound"
    )
    assert topic_intent([entry(1, "order_status"), entry(2, "refund_status")]) == "refund_status"
    assert topic_intent(
        [entry(1, "greet"), entry(2, "nlu_fallback"), entry(3, "request_human")]
    ) == ("nlu_fallback")
    assert topic_intent([entry(1, "greet"), entry(2, None), entry(3, "request_human")]) is None
    assert topic_intent([entry(1, "order_status", sender="bot")]) is None
