"""Surveys after a resolve: the rating, then CES and NPS where the team asks for them (on the
widget here; every channel gets the same questions with buttons). NPS at most once per customer
per period; anything that is not an answer ends the survey and goes to the bot; the dashboard
counts CES and NPS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import aiohttp
import pytest

from bot.appkeys import DESK, SERVICE, STORE
from tests.fakes.rasa import ScriptedRasa
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, scripted_gateway
from tests.helpers import AgentClient, CustomerClient

TEAMS = {
    "teams": [
        {"name": "general", "display_name": "Customer care", "surveys": ["ces", "nps"]},
        {"name": "orders", "display_name": "Orders"},
    ]
}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    rasa = ScriptedRasa({"a person please": ("request_human", 0.99)})
    async with scripted_gateway(tmp_path, rasa, queue=TEAMS) as gw:
        yield gw


async def resolved(gateway: Gateway, customer: CustomerClient) -> str:
    """The customer asks for a person, Sam takes and resolves it; the rating question comes."""
    mark = len(customer.frames)
    await customer.say("a person please", "queue")
    await gateway.app[SERVICE].drain()
    cid = customer.conversation_id or ""
    sam = await gateway.app[STORE].agent_by_username("sam")
    assert sam is not None
    await gateway.app[DESK].claim(cid, sam)
    await gateway.app[DESK].resolve(cid, sam)
    await customer.wait_for(lambda f: f.get("payload") == "csat_request", after=mark)
    return cid


def question(kind: str):  # type: ignore[no-untyped-def]
    return lambda f: f.get("type") == "message" and f.get("payload") == f"{kind}_request"


async def test_rating_then_effort_then_recommend(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    store = gateway.app[STORE]
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        cid = await resolved(gateway, customer)
        mark = len(customer.frames)
        await customer.send("4", payload="csat:4")
        ces = await customer.wait_for(question("ces"), after=mark)
        assert [b["payload"] for b in ces["buttons"]] == [f"ces:{n}" for n in range(1, 8)]
        # The rating's button pressed again (Telegram and Slack keep old buttons): not an
        # answer to the effort question, and not a message for the bot.
        stale = len(customer.frames)
        await customer.send("5", payload="csat:5")
        await customer.send("11", payload="ces:11")  # off the scale: ignored too
        mark = len(customer.frames)
        await customer.send("6")  # typed
        nps = await customer.wait_for(question("nps"), after=mark)
        assert [b["title"] for b in nps["buttons"]] == [str(n) for n in range(11)]
        mark = len(customer.frames)
        await customer.send("10", payload="nps:10")
        await customer.wait_for(
            lambda f: "Thank you for your feedback" in f.get("text", ""), after=mark
        )
        assert [r.rating for r in await store.csat_for(cid)] == [4]
        assert await store.survey_answers_of(cid) == [("ces", 6), ("nps", 10)]
        assert not [
            f
            for f in customer.frames[stale:]
            if f.get("type") == "message" and f.get("sender") == "bot"
        ], "the bot kept out of the survey"
        conversation = await store.conversation(cid)
        assert conversation is not None and not conversation.awaiting_csat
        assert conversation.awaiting_survey is None

        # The same customer again soon: rating and effort, no NPS question this time.
        await resolved(gateway, customer)
        mark = len(customer.frames)
        await customer.send("5", payload="csat:5")
        await customer.wait_for(question("ces"), after=mark)
        mark = len(customer.frames)
        await customer.send("7", payload="ces:7")
        await customer.wait_for(
            lambda f: "Thank you for your feedback" in f.get("text", ""), after=mark
        )
        assert not [f for f in customer.frames[mark:] if question("nps")(f)]

        # An answer out of the scale is not an answer: the survey ends, the bot takes it.
        await resolved(gateway, customer)
        mark = len(customer.frames)
        await customer.send("3", payload="csat:3")
        await customer.wait_for(question("ces"), after=mark)
        mark = len(customer.frames)
        await customer.send("9")  # CES goes to 7
        await customer.wait_for(
            lambda f: f.get("sender") == "bot" and f.get("text") == "ok", after=mark
        )
        conversation = await store.conversation(cid)
        assert conversation is not None and not conversation.awaiting_csat
        assert await store.survey_answers_of(cid) == [("ces", 6), ("nps", 10), ("ces", 7)]

        sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
        try:
            today = date.today().isoformat()
            _, report = await sam.api("GET", f"/dashboard?from={today}&to={today}")
        finally:
            await sam.close()
        period = report["period"]
        assert period["ces"] == {"answers": 2, "average": 6.5}
        assert period["nps"] == {
            "answers": 1,
            "promoters": 1,
            "passives": 0,
            "detractors": 0,
            "score": 100,
        }
    finally:
        await customer.close()
