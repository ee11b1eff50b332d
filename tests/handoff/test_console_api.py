"""The console's HTTP API against the real gateway app (SQLite store, in-process broker).

Rasa is pointed at a closed port: an agent's take-over and everything after it need no bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.appkeys import BROKER, DESK, SERVICE, STORE
from bot.core.models import Agent
from bot.core.policy import HandoffDecision
from handoff.auth import hash_password
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway
from tests.helpers import AgentClient, CustomerClient, dead_port


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    dead_rasa = f"http://127.0.0.1:{dead_port()}"
    async with running_gateway(gateway_settings(tmp_path, dead_rasa, None)) as gw:
        await gw.app[STORE].add_agent("kim", "Kim", hash_password(AGENT_PASSWORD))
        yield gw


async def agent(gw: Gateway, username: str) -> Agent:
    found = await gw.app[STORE].agent_by_username(username)
    assert found is not None
    return found


async def assigned_to_kim(gw: Gateway, http: aiohttp.ClientSession) -> CustomerClient:
    customer = await CustomerClient(gw.url, http).connect()
    await customer.send("hello, my router keeps dropping")
    await customer.wait_for(lambda f: f.get("type") == "ack")
    await gw.app[SERVICE].drain()
    assert customer.conversation_id is not None
    await gw.app[DESK].take_over(customer.conversation_id, await agent(gw, "kim"))
    return customer


async def test_api_needs_a_session_and_csrf(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gateway.url}/console/api/queue") as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "unauthenticated"
    async with http.get(f"{gateway.url}/console", allow_redirects=False) as resp:
        assert resp.status == 302 and "/console/login" in resp.headers["Location"]
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        async with kim.http.post(f"{gateway.url}/console/api/conversations/x/claim") as resp:
            assert resp.status == 403  # no X-CSRF-Token header
            assert (await resp.json())["error"] == "csrf"
        status, me = await kim.api("GET", "/me")
        assert status == 200 and me["username"] == "kim"
    finally:
        await kim.close()


async def test_wrong_password_is_refused(gateway: Gateway) -> None:
    client = AgentClient(gateway.url)
    try:
        with pytest.raises(AssertionError, match="login failed: 401"):
            await client.login("kim", "not-the-password")
    finally:
        await client.close()


async def test_bad_input_and_unknown_conversation(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await assigned_to_kim(gateway, http)
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        cid = customer.conversation_id
        status, body = await kim.api("GET", "/conversations/does-not-exist")
        assert status == 404 and body["message"]
        status, body = await kim.api("POST", "/conversations/does-not-exist/claim")
        assert status == 404
        async with kim.http.post(
            f"{gateway.url}/console/api/conversations/{cid}/reply",
            data="{oops",
            headers={"X-CSRF-Token": kim.csrf, "Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 400
        status, body = await kim.api("POST", f"/conversations/{cid}/reply", {})
        assert status == 400 and "text" in body["message"]
        status, body = await kim.api("POST", f"/conversations/{cid}/reply", {"text": "x" * 4001})
        assert status == 400
        status, body = await kim.api("POST", f"/conversations/{cid}/transfer", {"agent_id": 999})
        assert status in (400, 404)
        # Nothing of the refused replies reached the record.
        stored = await gateway.app[STORE].messages(cid or "")
        assert not [m for m in stored if m.sender_kind.value == "agent"]
    finally:
        await customer.close()
        await kim.close()


async def online(client: AgentClient, who: Agent) -> None:
    """Open the agent's console socket and wait until the others see them online."""
    await client.open_socket()
    for _ in range(100):
        status, agents = await client.api("GET", "/agents")
        assert status == 200
        if any(a["id"] == who.id and a["online"] for a in agents):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{who.username} never showed as online")


async def test_a_supervisor_moving_a_colleagues_conversation_names_the_colleague(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    store = gateway.app[STORE]
    await store.add_agent("ada", "Ada", hash_password(AGENT_PASSWORD), role="supervisor")
    await store.add_agent("lee", "Lee", hash_password(AGENT_PASSWORD))
    customer = await assigned_to_kim(gateway, http)
    ada = await AgentClient(gateway.url).login("ada", AGENT_PASSWORD)
    lee = await AgentClient(gateway.url).login("lee", AGENT_PASSWORD)
    try:
        cid = customer.conversation_id
        await online(lee, await agent(gateway, "lee"))
        status, _ = await ada.api(
            "POST", f"/conversations/{cid}/transfer", {"agent_id": (await agent(gateway, "lee")).id}
        )
        assert status == 200
        await customer.wait_for(lambda f: f.get("type") == "agent_joined" and f["name"] == "Lee")
        # Taking it back herself: "Ada is taking over from Lee", never "from Ada".
        status, _ = await ada.api(
            "POST", f"/conversations/{cid}/transfer", {"agent_id": (await agent(gateway, "ada")).id}
        )
        assert status == 200
        await customer.wait_for(lambda f: f.get("type") == "agent_joined" and f["name"] == "Ada")
        notices = customer.texts("system")
        assert "Lee is taking over from Kim." in notices
        assert "Ada is taking over from Lee." in notices
        assert not any("from Ada" in n for n in notices)
    finally:
        await customer.close()
        await ada.close()
        await lee.close()


async def test_only_the_assignee_replies_and_transfer_hands_over(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    store = gateway.app[STORE]
    await store.add_agent("lee", "Lee", hash_password(AGENT_PASSWORD))
    customer = await assigned_to_kim(gateway, http)
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    lee = await AgentClient(gateway.url).login("lee", AGENT_PASSWORD)
    try:
        cid = customer.conversation_id
        status, body = await lee.api("POST", f"/conversations/{cid}/reply", {"text": "hi"})
        assert status == 409 and "another agent" in body["message"]
        status, _ = await kim.api("POST", f"/conversations/{cid}/claim")
        assert status == 409
        lee_agent = await agent(gateway, "lee")
        # Lee is away (no console open): nobody would answer the customer.
        status, body = await kim.api(
            "POST", f"/conversations/{cid}/transfer", {"agent_id": lee_agent.id}
        )
        assert status == 409 and "Lee is away" in body["message"]
        await online(lee, lee_agent)
        status, _ = await kim.api(
            "POST", f"/conversations/{cid}/transfer", {"agent_id": lee_agent.id}
        )
        assert status == 200
        await customer.wait_for(lambda f: f.get("type") == "agent_joined" and f["name"] == "Lee")
        assert "Lee is taking over from Kim." in customer.texts("system")
        status, _ = await lee.api("POST", f"/conversations/{cid}/reply", {"text": "Lee here"})
        assert status == 200
        await customer.wait_for(lambda f: f.get("sender") == "agent" and f["text"] == "Lee here")
        status, body = await kim.api("POST", f"/conversations/{cid}/notes", {"text": "VIP?"})
        assert status == 200
        status, view = await lee.api("GET", f"/conversations/{cid}")
        assert status == 200
        assert [n["text"] for n in view["notes"]] == ["VIP?"]
        assert view["packet"]["source"] == "agent"
        # Private notes never reach the customer.
        assert "VIP?" not in customer.texts()
        audit = await store.audit_log(cid or "")
        assert [a["action"] for a in audit] == ["handoff", "claim", "transfer"]
    finally:
        await customer.close()
        await kim.close()
        await lee.close()


async def test_after_hours_handoff_waits_for_a_follow_up(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    dead_rasa = f"http://127.0.0.1:{dead_port()}"
    settings = gateway_settings(tmp_path, dead_rasa, None, hours={"always_open": False})
    async with running_gateway(settings) as gw:
        service, desk, store = gw.app[SERVICE], gw.app[DESK], gw.app[STORE]
        customer = await CustomerClient(gw.url, http).connect()
        try:
            await customer.send("hello?")
            await customer.wait_for(lambda f: f.get("type") == "ack")
            await service.drain()
            conversation = await store.conversation(customer.conversation_id or "")
            assert conversation is not None
            moved = await desk.starter.start(
                conversation, HandoffDecision(policy_reason="explicit_request"), None
            )
            assert moved.state.value == "pending_followup"
            await customer.wait_for(
                lambda f: f.get("sender") == "system" and "offline right now" in f["text"]
            )
            await customer.send("I'll be around tomorrow morning")
            await customer.wait_for(lambda f: f.get("type") == "ack" and f["seq"] > 1)
            await service.drain()
            after = await store.conversation(moved.id)
            assert after is not None and after.state.value == "pending_followup"
            items = await desk.queue_snapshot()
            assert [(i["conversation_id"], i["state"]) for i in items] == [
                (moved.id, "pending_followup")
            ]
            assert items[0]["last_message"] == "I'll be around tomorrow morning"
            claimed = await desk.claim(moved.id, await agent(gw, "sam"))
            assert claimed.state.value == "assigned"
        finally:
            await customer.close()


async def test_resolve_hands_back_cleanly_and_the_rating_prompt_expires(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    store, service = gateway.app[STORE], gateway.app[SERVICE]
    customer = await assigned_to_kim(gateway, http)
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        cid = customer.conversation_id or ""
        await customer.send("this was for the person, not the bot")
        await customer.wait_for(lambda f: f.get("type") == "ack" and f["seq"] > 1)
        status, _ = await kim.api("POST", f"/conversations/{cid}/resolve")
        assert status == 200
        conversation = await store.conversation(cid)
        assert conversation is not None
        assert conversation.state.value == "bot" and conversation.awaiting_csat
        inbound = [m.seq for m in await store.messages(cid) if m.direction.value == "in"]
        # What was said to the person is not replayed to the bot afterwards.
        assert conversation.bot_cursor == max(inbound)
        await customer.send("thanks, one more question")
        await customer.wait_for(lambda f: f.get("type") == "ack" and f["seq"] > max(inbound))
        await service.drain()
        conversation = await store.conversation(cid)
        assert conversation is not None and not conversation.awaiting_csat
        # A later "2" is an answer to something else now, not a rating.
        await customer.send("2")
        await customer.wait_for(lambda f: f.get("type") == "ack" and f.get("seq", 0) > 0)
        await service.drain()
        assert await store.csat_for(cid) == []
    finally:
        await customer.close()
        await kim.close()


async def test_a_lost_queue_entry_does_not_block_claims(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    service, desk, broker = gateway.app[SERVICE], gateway.app[DESK], gateway.app[BROKER]
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.send("hello")
        await customer.wait_for(lambda f: f.get("type") == "ack")
        await service.drain()
        conversation = await gateway.app[STORE].conversation(customer.conversation_id or "")
        assert conversation is not None
        await desk.starter.start(
            conversation, HandoffDecision(policy_reason="explicit_request"), None
        )
        # As after a restart of the in-process broker: SQL says queued, the queue is empty.
        assert await broker.remove("queue:general", conversation.id)
        assert await desk.queue.rebuild() == 1
        assert await broker.position("queue:general", conversation.id) == 1
        await broker.remove("queue:general", conversation.id)
        claimed = await desk.claim(conversation.id, await agent(gateway, "kim"))
        assert claimed.state.value == "assigned"
    finally:
        await customer.close()


async def test_session_body_that_is_not_utf8_is_a_400(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{gateway.url}/webchat/session",
        data=b"\xff\xfe{",
        headers={"Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 400


async def test_follow_ups_join_the_queue_in_arrival_order_when_the_team_opens(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    dead_rasa = f"http://127.0.0.1:{dead_port()}"
    settings = gateway_settings(
        tmp_path,
        dead_rasa,
        None,
        hours={"always_open": False},
        rasa={"urls": [dead_rasa], "retry_seconds": 0.2},
    )
    async with running_gateway(settings) as gw:
        desk, store = gw.app[DESK], gw.app[STORE]
        customers = []
        try:
            for text in ("first, after hours", "second, after hours"):
                customer = await CustomerClient(gw.url, http).connect()
                customers.append(customer)
                await customer.send(text)
                await customer.wait_for(lambda f: f.get("type") == "ack")
                await gw.app[SERVICE].drain()
                conversation = await store.conversation(customer.conversation_id or "")
                assert conversation is not None
                moved = await desk.starter.start(
                    conversation, HandoffDecision(policy_reason="explicit_request"), None
                )
                assert moved.state.value == "pending_followup"
            assert await desk.starter.reopen() == 0  # still closed: nothing moves

            settings.hours.always_open = True  # the team opens
            # Two replicas at once move each follow-up once (here: two calls in parallel, and
            # the retry loop's own call).
            counts = await asyncio.gather(desk.starter.reopen(), desk.starter.reopen())
            for number, customer in enumerate(customers, start=1):
                notice = await customer.wait_for(
                    lambda f: f.get("sender") == "system" and "We're open now" in f["text"]
                )
                assert f"You're number {number} in the queue" in notice["text"]
            await asyncio.sleep(0.5)  # a retry round: nothing moves twice
            for customer in customers:
                told = [t for t in customer.texts("system") if "We're open now" in t]
                assert len(told) == 1
            assert sum(counts) <= 2
            queue = await desk.queue_snapshot()
            assert [i["conversation_id"] for i in queue] == [c.conversation_id for c in customers]
            assert {i["state"] for i in queue} == {"queued"}
        finally:
            for customer in customers:
                await customer.close()


async def test_the_card_shows_earlier_handoffs_of_the_same_chat_with_their_rating(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """A Telegram chat or a widget goes on for months: a customer who comes back in the same
    conversation is not a "first conversation"."""
    desk = gateway.app[DESK]
    customer = await assigned_to_kim(gateway, http)
    kim = await agent(gateway, "kim")
    try:
        cid = customer.conversation_id or ""
        await desk.resolve(cid, kim)
        await customer.wait_for(lambda f: f.get("sender") == "system" and "rate" in f["text"])
        await customer.send("4", payload="csat:4")
        await customer.wait_for(lambda f: "Thank you for your feedback" in f.get("text", ""))
        await gateway.app[SERVICE].drain()
        await desk.take_over(cid, kim)  # the customer is back with another problem
        view = await desk.conversation_view(cid)
    finally:
        await customer.close()
    (earlier,) = view["customer"]["past_conversations"]
    assert earlier["this_conversation"] is True and earlier["conversation_id"] == cid
    assert earlier["agent"] == "Kim" and earlier["rating"] == 4
    assert earlier["resolved_at"] is not None and earlier["reason"] == "agent_takeover"
    # The handoff the card is about is not listed as "earlier".
    assert view["packet"]["customer"]["past_conversations"][0]["rating"] == 4


async def test_the_console_keeps_seeing_a_conversation_after_it_is_resolved(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """An agent with the conversation open sees the rating and what the customer tells the
    bot next, live, not only after a reload."""
    customer = await assigned_to_kim(gateway, http)
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        await kim.open_socket()
        cid = customer.conversation_id or ""
        await gateway.app[DESK].resolve(cid, await agent(gateway, "kim"))
        await customer.send("4", payload="csat:4")
        await customer.send("thanks, all good now")

        def live(text: str) -> Callable[[dict[str, Any]], bool]:
            return lambda f: (
                f.get("type") == "message"
                and f.get("conversation_id") == cid
                and f["message"]["text"] == text
            )

        await kim.wait_event(live("4"), timeout=10)
        await kim.wait_event(live("Thank you for your feedback!"), timeout=10)
        await kim.wait_event(live("thanks, all good now"), timeout=10)
    finally:
        await customer.close()
        await kim.close()


async def test_availability_teams_and_agent_changes_over_the_api(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    try:
        status, body = await kim.api("POST", "/me/availability", {"availability": "away"})
        assert (status, body["availability"]) == (200, "away")
        status, body = await kim.api("POST", "/me/availability", {"availability": "asleep"})
        assert status == 400 and body["error"] == "bad_availability"
        status, body = await kim.api("POST", "/me/availability", {})
        assert status == 400 and "online, away, offline" in body["message"]
        status, agents = await kim.api("GET", "/agents")
        me = next(a for a in agents if a["username"] == "kim")
        assert (me["availability"], me["capacity"], me["open"]) == ("away", 3, 0)
        status, teams = await kim.api("GET", "/teams")
        assert [t["name"] for t in teams] == ["general", "orders", "tech_support"]

        kim_id = me["id"]
        status, body = await kim.api("POST", f"/agents/{kim_id}", {"capacity": 5})
        assert status == 403  # only supervisors
        for bad, error in (
            ({"capacity": 500}, "bad_capacity"),
            ({"capacity": "5"}, "bad_capacity"),
            ({"teams": "orders"}, "bad_teams"),
            ({"teams": ["billing"]}, "unknown_team"),
            ({"skills": [""]}, "bad_skills"),
            ({}, "nothing_to_change"),
        ):
            status, body = await sam.api("POST", f"/agents/{kim_id}", bad)
            assert (status, body["error"]) == (400, error), bad
        status, body = await sam.api("POST", "/agents/999999", {"capacity": 2})
        assert status == 404
        status, body = await sam.api(
            "POST", f"/agents/{kim_id}", {"teams": ["orders"], "skills": ["Refunds"], "capacity": 2}
        )
        assert status == 200
        assert body["agent"] == {
            "id": kim_id,
            "teams": ["orders"],
            "skills": ["refunds"],
            "capacity": 2,
        }
    finally:
        await kim.close()
        await sam.close()


async def test_transfer_to_a_team_over_the_api_and_its_bad_input(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await assigned_to_kim(gateway, http)
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        path = f"/conversations/{customer.conversation_id}/transfer"
        for bad, error in (
            ({"team": "billing"}, "unknown_team"),
            ({"team": 7}, "unknown_team"),
            ({}, "missing_agent"),
        ):
            status, body = await kim.api("POST", path, bad)
            assert (status, body["error"]) == (400, error), bad
        status, body = await kim.api("POST", path, {"team": "orders"})
        assert status == 200, body
        notice = await customer.wait_for(
            lambda f: f.get("sender") == "system" and "passed you to" in f.get("text", "")
        )
        assert notice["text"].startswith("I've passed you to Orders and delivery")
        status, view = await kim.api("GET", f"/conversations/{customer.conversation_id}")
        assert view["conversation"]["state"] == "queued"
        assert view["conversation"]["team_title"] == "Orders and delivery"
        status, body = await kim.api("POST", path, {"queue": True})
        assert status == 409  # it is no longer Kim's to move
    finally:
        await kim.close()
        await customer.close()


async def test_the_dashboard_api_counts_a_real_handoff_and_refuses_bad_input(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    desk, store = gateway.app[DESK], gateway.app[STORE]
    customer = await CustomerClient(gateway.url, http).connect()
    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        await customer.send("my order 1004 never came")
        await customer.wait_for(lambda f: f.get("type") == "ack")
        await gateway.app[SERVICE].drain()
        cid = customer.conversation_id or ""
        sam_agent = await agent(gateway, "sam")
        await desk.take_over(cid, sam_agent)
        await desk.agent_reply(cid, sam_agent, "Let me check that for you.")
        await desk.resolve(cid, sam_agent)
        await customer.send("5", payload="csat:5")
        await customer.wait_for(lambda f: "Thank you for your feedback" in f.get("text", ""))

        status, body = await sam.api("GET", "/dashboard")
        assert status == 200, body
        period = body["period"]
        assert (period["conversations"], period["handoffs"], period["resolved"]) == (1, 1, 1)
        assert period["containment"] == 0.0
        assert period["handoffs_by_reason"] == {"agent_takeover": 1}
        assert period["first_response_seconds"]["count"] == 1
        assert period["csat"]["average"] == 5.0 and period["csat"]["response_rate"] == 1.0
        assert body["live"] == {"waiting": 0, "agents_online": 0, "at_risk": 0}
        status, body = await sam.api("GET", "/dashboard?team=orders")
        assert status == 200 and body["period"]["handoffs"] == 0  # it was the general team's
        assert await store.conversation(cid) is not None

        for query, error in (
            ("?from=yesterday", "bad_date"),
            ("?from=2026-11-20&to=2026-11-01", "bad_range"),
            ("?from=2020-01-01&to=2026-11-01", "bad_range"),
            ("?team=billing", "unknown_team"),
        ):
            status, body = await sam.api("GET", "/dashboard" + query)
            assert (status, body["error"]) == (400, error), query
        status, body = await kim.api("GET", "/dashboard")
        assert status == 403
        base = f"{gateway.url}/console/api/dashboard.csv"
        async with sam.http.get(base + "?table=reasons") as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            assert "attachment" in resp.headers["Content-Disposition"]
            assert (await resp.text()).splitlines() == ["reason,handoffs", "agent_takeover,1"]
        async with sam.http.get(base + "?table=secrets") as resp:
            assert resp.status == 400 and (await resp.json())["error"] == "bad_table"
        async with kim.http.get(base) as resp:
            assert resp.status == 403
    finally:
        await customer.close()
        await sam.close()
        await kim.close()


async def test_the_inbox_api_pages_and_refuses_bad_filters(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customers = [await CustomerClient(gateway.url, http).connect() for _ in range(27)]
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        for n, customer in enumerate(customers):
            await customer.send(f"question number {n} about invoices")
            await customer.wait_for(lambda f: f.get("type") == "ack")
        await gateway.app[SERVICE].drain()
        status, first = await kim.api("GET", "/conversations?q=invoices")
        assert status == 200 and len(first["items"]) == 25 and first["has_more"]
        status, second = await kim.api("GET", "/conversations?q=invoices&page=2")
        assert len(second["items"]) == 2 and not second["has_more"]
        ids = {i["conversation_id"] for i in first["items"] + second["items"]}
        assert ids == {c.conversation_id for c in customers}
        status, one = await kim.api("GET", "/conversations?q=number%2026")
        assert [i["conversation_id"] for i in one["items"]] == [customers[26].conversation_id]
        status, mine = await kim.api("GET", "/conversations?agent=me")
        assert status == 200 and mine["items"] == []
        for query, error in (
            ("state=closed", "bad_state"),
            ("team=billing", "unknown_team"),
            ("agent=kim", "bad_agent"),
            ("rating=6", "bad_rating"),
            ("page=0", "bad_page"),
            ("from=2026-11-20&to=2026-11-01", "bad_range"),
            ("from=soon", "bad_date"),
            ("q=" + "x" * 201, "too_long"),
        ):
            status, body = await kim.api("GET", "/conversations?" + query)
            assert (status, body["error"]) == (400, error), query
    finally:
        for customer in customers:
            await customer.close()
        await kim.close()
