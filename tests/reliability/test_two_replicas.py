"""Two gateway processes sharing one Redis and one PostgreSQL, as behind a load balancer.

A customer on replica A and an agent on replica B talk live in both directions; two agents
claiming the same conversation at the same moment through different replicas: exactly one wins.
The bot is a stub that echoes (no model needed); Redis is a private redis-server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.core.state import ConversationState
from tests.reliability.support import (
    ConsoleClient,
    Database,
    GatewayProcess,
    Gateways,
    RedisServer,
    StubRasa,
    WidgetClient,
    logged_in,
    wait_until,
    write_gateway_config,
)

CLAIM_ROUNDS = 6


@dataclass
class Replicas:
    """Two gateway processes on one Redis and one database, and the agents' ids."""

    a: GatewayProcess
    b: GatewayProcess
    agents: dict[str, int]  # username -> agent id


@pytest.fixture
async def replicas(
    database: Database,
    gateways: Gateways,
    private_redis: RedisServer,
    stub_rasa: StubRasa,
    tmp_path: Path,
) -> AsyncIterator[Replicas]:
    agents = {
        "alex": await database.add_agent("alex", "Alex"),
        "blair": await database.add_agent("blair", "Blair"),
    }
    config = write_gateway_config(tmp_path / "gateway.yml")
    env = {
        "DATABASE_URL": database.url,
        "REDIS_URL": private_redis.url,
        "RASA_URL": stub_rasa.url,
    }
    a, b = gateways.create("a", config, **env), gateways.create("b", config, **env)
    await gateways.start_many(a, b)
    yield Replicas(a, b, agents)


async def handed_off_customer(base_url: str, http: aiohttp.ClientSession) -> WidgetClient:
    """A widget customer whose conversation waits in the human queue."""
    customer = await WidgetClient(base_url, http).start()
    await customer.send("I would like a human please")
    await customer.wait_for_text("system", "in the queue")
    return customer


async def test_customer_on_a_and_agent_on_b_talk_live_both_ways(
    replicas: Replicas, database: Database, http: aiohttp.ClientSession
) -> None:
    customer = await handed_off_customer(replicas.a.url, http)
    agent = await logged_in(replicas.b.url, "alex")
    try:
        cid = customer.conversation_id
        assert cid is not None
        await agent.follow()
        await agent.watch(cid)
        status, body = await agent.api("POST", f"/conversations/{cid}/claim")
        assert status == 200, body
        await customer.wait_for_text("system", "Alex from Customer care joined")

        # customer -> A -> Redis -> B -> the agent's console socket, live
        await customer.send("my router blinks red")
        await wait_until(
            lambda: "my router blinks red" in agent.live[cid].values(),
            10,
            "the customer's message on the console socket of replica B",
        )
        # agent -> B -> Redis -> A -> the customer's socket, live
        status, body = await agent.api(
            "POST", f"/conversations/{cid}/reply", {"text": "Please unplug it for 10 seconds."}
        )
        assert status == 200, body
        await customer.wait_for_text("agent", "unplug it for 10 seconds")

        assert customer.stats.connects == 1, "all of it arrived live, without a reconnect"
        assert agent.opens == 1
        stored = [m.text for m in await database.messages(cid)]
        assert stored.count("my router blinks red") == 1
        assert stored.count("Please unplug it for 10 seconds.") == 1
        assert customer.texts("agent") == ["Please unplug it for 10 seconds."]
        assert not customer.stats.anomalies and not customer.errors
    finally:
        await agent.close()
        await customer.close()


async def test_two_agents_claiming_at_once_on_two_replicas_exactly_one_wins(
    replicas: Replicas, database: Database, http: aiohttp.ClientSession
) -> None:
    on_b: ConsoleClient = await logged_in(replicas.b.url, "alex")
    on_a: ConsoleClient = await logged_in(replicas.a.url, "blair")
    winners: list[str] = []
    try:
        for _ in range(CLAIM_ROUNDS):
            customer = await handed_off_customer(replicas.a.url, http)
            cid = customer.conversation_id
            try:
                path = f"/conversations/{cid}/claim"
                (status_b, body_b), (status_a, body_a) = await asyncio.gather(
                    on_b.api("POST", path), on_a.api("POST", path)
                )
                assert sorted([status_a, status_b]) == [200, 409], (body_a, body_b)
                loser_body = body_a if status_a == 409 else body_b
                assert loser_body["error"] == "conflict"
                winner = "alex" if status_b == 200 else "blair"
                winners.append(winner)

                async with database.store() as store:
                    conversation = await store.conversation(cid or "")
                    handoff = await store.current_handoff(cid or "")
                assert conversation is not None and handoff is not None
                assert conversation.state is ConversationState.ASSIGNED
                assert conversation.assigned_agent_id == replicas.agents[winner]
                assert handoff.agent_id == replicas.agents[winner]
                # Both replicas report the winner.
                for client in (on_a, on_b):
                    status, view = await client.api("GET", f"/conversations/{cid}")
                    assert status == 200
                    assert view["conversation"]["assigned_agent_id"] == replicas.agents[winner]

                joined = await customer.wait_for_text("system", "joined the conversation")
                await asyncio.sleep(0.2)  # room for a second "joined" to show up
                joins = [t for t in customer.texts("system") if "joined the conversation" in t]
                assert joins == [joined["text"]]
                assert joined["text"].startswith(winner.capitalize())
            finally:
                await customer.close()
        print(f"claim winners per round: {winners}")
    finally:
        await on_a.close()
        await on_b.close()


async def test_replicas_started_together_with_a_demo_agent_both_come_up(
    database: Database,
    gateways: Gateways,
    private_redis: RedisServer,
    stub_rasa: StubRasa,
    tmp_path: Path,
) -> None:
    """gateway.yml ships a demo agent; every replica creates it at start-up if it is missing.

    Replicas whose start-ups overlap must not crash on each other's insert. To make the overlap
    certain, the test holds a lock that lets the replicas read the agents table but not write
    it until all of them have looked for the demo agent.
    """
    async with database.store(migrate=True):
        pass  # the schema, as a deploy's migration job leaves it
    config = write_gateway_config(
        tmp_path / "gateway.yml",
        demo_agent={"username": "demo", "password": "demo-password", "display_name": "Sam"},
    )
    env = {"DATABASE_URL": database.url, "REDIS_URL": private_redis.url, "RASA_URL": stub_rasa.url}
    replicas = [gateways.create(name, config, **env) for name in "abc"]
    engine = create_async_engine(database.url, poolclass=NullPool)
    try:
        async with engine.connect() as holder, engine.connect() as watcher:
            await holder.execute(sa.text("LOCK TABLE agents IN SHARE ROW EXCLUSIVE MODE"))
            for replica in replicas:
                await replica.spawn()

            # Until every replica waits on the lock (they insert the demo agent), or a while.
            for _ in range(150):
                waiting = await watcher.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock'"
                    )
                )
                await watcher.rollback()
                if waiting == len(replicas):
                    break
                await asyncio.sleep(0.1)
            await holder.rollback()
    finally:
        await engine.dispose()
    await asyncio.gather(*(replica.wait_healthy() for replica in replicas))
    async with database.store() as store:
        assert [agent.username for agent in await store.agents()] == ["demo"]


async def test_an_sla_breach_is_seen_by_both_replicas_and_acted_on_once(
    database: Database,
    gateways: Gateways,
    private_redis: RedisServer,
    stub_rasa: StubRasa,
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    """Both replicas sweep the SLA clocks every half second; the warning and the breach of
    one conversation are each acted on once (one audit entry, one priority step, one move up a
    tier), and the consoles on both replicas hear of them."""
    await database.add_agent("alex", "Alex")  # not a member of any team's push queue
    config = write_gateway_config(
        tmp_path / "gateway.yml",
        queue={
            "default_team": "general",
            "teams": [
                {"name": "general", "display_name": "Front line", "escalate_to": "experts"},
                {"name": "experts", "display_name": "Experts"},
                {"name": "orders"},
                {"name": "tech_support"},
            ],
        },
        sla=[
            {
                "teams": ["general", "orders", "tech_support"],
                "first_response_minutes": 0.1,  # 6 s; the warning at 4.8 s
                "business_hours": False,
                "on_warning": ["notify"],
                "on_breach": ["notify", "raise_priority", "escalate"],
            }
        ],
    )
    env = {"DATABASE_URL": database.url, "REDIS_URL": private_redis.url, "RASA_URL": stub_rasa.url}
    a, b = gateways.create("a", config, **env), gateways.create("b", config, **env)
    await gateways.start_many(a, b)
    on_a, on_b = await logged_in(a.url, "alex"), await logged_in(b.url, "alex")
    customer = await handed_off_customer(a.url, http)
    try:
        await on_a.follow()
        await on_b.follow()
        cid = customer.conversation_id
        assert cid is not None

        def breaches(console: ConsoleClient) -> list[dict[str, object]]:
            return [
                e
                for e in console.log.items
                if e.get("type") == "sla" and e.get("conversation_id") == cid
            ]

        await wait_until(
            lambda: (
                any(e["level"] == "breach" for e in breaches(on_a))
                and any(e["level"] == "breach" for e in breaches(on_b))
            ),
            20,
            "the SLA breach on the consoles of both replicas",
        )
        await asyncio.sleep(1.5)  # three more sweeps on each replica: nothing twice
        for console in (on_a, on_b):
            assert [e["level"] for e in breaches(console)] == ["warning", "breach"]
        async with database.store() as store:
            audit = [e for e in await store.audit_log(cid) if e["action"].startswith("sla_")]
            conversation = await store.conversation(cid)
        assert [e["action"] for e in audit] == ["sla_warning", "sla_breach"]
        assert audit[1]["details"]["escalated_to"] == "experts"
        assert conversation is not None
        assert (conversation.team, conversation.priority) == ("experts", "high")
    finally:
        await customer.close()
        await on_a.close()
        await on_b.close()
