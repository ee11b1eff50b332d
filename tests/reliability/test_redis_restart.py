"""Redis restarts under two gateway replicas (one PostgreSQL): they reconnect and carry on.

Redis is a private ``redis-server --save "" --appendonly no``, so a restart also loses
everything it held (queue, locks, presence). The bot is a stub that echoes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.core.state import ConversationState
from tests.reliability.support import (
    ConsoleClient,
    Database,
    Frame,
    GatewayProcess,
    Gateways,
    RedisServer,
    StubRasa,
    WidgetClient,
    assert_gap_free,
    inbound,
    logged_in,
    outbound,
    wait_until,
    write_gateway_config,
)

# The gateway's broker channels: RedisBroker(prefix="csbot:") publishes topic T on this + T.
EVENT_CHANNEL_PREFIX = "csbot:events:"
_probe_ids = itertools.count(1)


@dataclass
class Cluster:
    """Two replicas (a, b) on one private Redis and one database."""

    a: GatewayProcess
    b: GatewayProcess
    redis: RedisServer
    database: Database
    http: aiohttp.ClientSession

    async def customer(self, gateway: GatewayProcess) -> WidgetClient:
        """A widget customer connected to ``gateway``."""
        return await WidgetClient(gateway.url, self.http).start()

    async def queued_customer(self, gateway: GatewayProcess) -> WidgetClient:
        """A customer whose conversation waits in the human queue."""
        customer = await self.customer(gateway)
        await customer.send("I would like a human please")
        await customer.wait_for_text("system", "in the queue")
        return customer

    @contextlib.asynccontextmanager
    async def claimed_and_bot_customers(
        self,
    ) -> AsyncIterator[tuple[WidgetClient, WidgetClient, ConsoleClient]]:
        """On replica A a customer whom agent Alex on replica B has claimed (and watches
        live) and a customer still with the bot; all closed afterwards."""
        human = await self.queued_customer(self.a)
        bot_customer = await self.customer(self.a)
        agent = await logged_in(self.b.url, "alex")
        try:
            await agent.follow()
            await agent.watch(human.conversation_id or "")
            status, body = await agent.api("POST", f"/conversations/{human.conversation_id}/claim")
            assert status == 200, body
            yield human, bot_customer, agent
        finally:
            await agent.close()
            await human.close()
            await bot_customer.close()

    async def restart_redis(
        self, widgets: list[WidgetClient], consoles: list[ConsoleClient], down: float = 0.5
    ) -> None:
        """kill -9 Redis, start it again on the same port (empty) after ``down`` seconds."""
        await self.redis.kill()
        await asyncio.sleep(down)
        await self.redis.start()
        await self.replicas_reconnected(widgets, consoles)

    async def replicas_reconnected(
        self, widgets: list[WidgetClient], consoles: list[ConsoleClient]
    ) -> None:
        """Both replicas answer /healthz, and their pub/sub carries events again: a probe
        published straight into Redis reaches each given widget and console socket."""
        await asyncio.gather(self.a.wait_healthy(), self.b.wait_healthy())
        targets = [(f"conv:{w.conversation_id}", w.frames) for w in widgets]
        targets += [("console", c.log.items) for c in consoles]
        client = aioredis.Redis.from_url(self.redis.url)
        try:
            for topic, frames in targets:
                await probe_until_seen(client, topic, frames)
        finally:
            await client.aclose()


async def probe_until_seen(client: aioredis.Redis, topic: str, frames: list[Frame]) -> None:
    """Publish a probe event on the gateway's channel for ``topic`` until it shows up among
    ``frames`` (what a socket subscribed to that topic received)."""
    probe = f"probe-{next(_probe_ids)}"

    async def arrived() -> bool:
        event = json.dumps({"type": "probe", "id": probe})
        await client.publish(EVENT_CHANNEL_PREFIX + topic, event)
        return any(f.get("id") == probe for f in frames)

    await wait_until(arrived, 15, f"pub/sub on {topic} to carry events again", interval=0.2)


@pytest.fixture
async def cluster(
    database: Database,
    gateways: Gateways,
    private_redis: RedisServer,
    stub_rasa: StubRasa,
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> AsyncIterator[Cluster]:
    await database.add_agent("alex", "Alex")
    await database.add_agent("blair", "Blair")
    config = write_gateway_config(tmp_path / "gateway.yml")
    env = {"DATABASE_URL": database.url, "REDIS_URL": private_redis.url, "RASA_URL": stub_rasa.url}
    a, b = gateways.create("a", config, **env), gateways.create("b", config, **env)
    await gateways.start_many(a, b)
    yield Cluster(a, b, private_redis, database, http)


async def test_replicas_carry_on_after_redis_restarts(cluster: Cluster) -> None:
    """Live flows across replicas and the bot work again after the restart; nothing is lost."""
    async with cluster.claimed_and_bot_customers() as (human, bot_customer, agent):
        hid, kid = human.conversation_id or "", bot_customer.conversation_id or ""
        await human.send("before the restart")
        await wait_until(lambda: "before the restart" in agent.live[hid].values(), 10, "live")
        await bot_customer.send("hello before")
        await bot_customer.wait_for_text("bot", "echo: hello before")

        await cluster.restart_redis([human, bot_customer], [agent])

        # customer on A -> agent console socket on B, live
        await human.send("after the restart")
        await wait_until(
            lambda: "after the restart" in agent.live[hid].values(),
            10,
            "the customer's message on the console socket of replica B",
        )
        # agent on B -> customer socket on A, live
        status, body = await agent.api("POST", f"/conversations/{hid}/reply", {"text": "Got it."})
        assert status == 200, body
        await human.wait_for_text("agent", "Got it.")
        # the bot still answers
        await bot_customer.send("hello after")
        await bot_customer.wait_for_text("bot", "echo: hello after")
        await asyncio.sleep(0.5)

        human_messages = await cluster.database.messages(hid)
        assert_gap_free(human_messages)
        assert [m.text for m in inbound(human_messages)] == [
            "I would like a human please",
            "before the restart",
            "after the restart",
        ]
        assert [m.text for m in outbound(human_messages, "agent")] == ["Got it."]
        assert human.texts("agent") == ["Got it."]
        bot_messages = await cluster.database.messages(kid)
        assert_gap_free(bot_messages)
        assert [m.text for m in bot_messages] == [
            "hello before",
            "echo: hello before",
            "hello after",
            "echo: hello after",
        ]
        assert bot_customer.texts() == [m.text for m in bot_messages]
        for widget in (human, bot_customer):
            assert not widget.stats.anomalies and not widget.errors


async def test_a_customer_message_sent_while_redis_is_down_reaches_the_agent(
    cluster: Cluster,
) -> None:
    """Stored while Redis was down; the agent's console (live, or after it reconnects and
    refreshes, as console.js does) must show it once Redis is back."""
    async with cluster.claimed_and_bot_customers() as (human, bot_customer, agent):
        hid, kid = human.conversation_id or "", bot_customer.conversation_id or ""

        await cluster.redis.kill()
        await human.send("sent while redis was down")
        await bot_customer.send("hello while redis was down")
        await asyncio.sleep(1.0)
        await cluster.redis.start()
        await cluster.replicas_reconnected([human, bot_customer], [agent])
        await human.wait_all_acked()
        await bot_customer.wait_all_acked()

        # Stored once; the bot answers the message that waited, once.
        await bot_customer.wait_for_text("bot", "echo: hello while redis was down")
        stored = [m.text for m in inbound(await cluster.database.messages(hid))]
        assert stored.count("sent while redis was down") == 1
        bot_messages = await cluster.database.messages(kid)
        assert [m.text for m in bot_messages] == [
            "hello while redis was down",
            "echo: hello while redis was down",
        ]
        assert bot_customer.texts() == [m.text for m in bot_messages]

        # The agent sees it.
        await wait_until(
            lambda: agent.shows(hid, "sent while redis was down"),
            10,
            "the agent's console to show the message sent while Redis was down",
            describe=lambda: (
                f"console shows {sorted(agent.known[hid].items())}; "
                f"console socket opened {agent.opens}x"
            ),
        )


async def test_an_agent_reply_sent_while_redis_is_down_reaches_the_customer_once(
    cluster: Cluster,
) -> None:
    """The agent replies while Redis is down and, if told it failed, sends it again when the
    console says so. The customer gets the reply exactly once."""
    human = await cluster.queued_customer(cluster.a)
    agent = await logged_in(cluster.b.url, "alex")
    hid = human.conversation_id or ""
    reply = {"text": "I have refunded your order."}
    try:
        await agent.follow()
        status, body = await agent.api("POST", f"/conversations/{hid}/claim")
        assert status == 200, body
        await human.wait_for_text("system", "Alex from Customer care joined")

        await cluster.redis.kill()
        first_status, first_body = await agent.api("POST", f"/conversations/{hid}/reply", reply)
        await asyncio.sleep(0.5)
        await cluster.redis.start()
        await cluster.replicas_reconnected([human], [agent])
        attempts = [first_status]
        while attempts[-1] != 200 and len(attempts) < 5:  # "Try again shortly."
            status, _ = await agent.api("POST", f"/conversations/{hid}/reply", reply)
            attempts.append(status)
        assert attempts[-1] == 200, attempts

        await human.wait_for_text("agent", reply["text"])
        await asyncio.sleep(1.0)
        stored = [m.text for m in outbound(await cluster.database.messages(hid), "agent")]
        assert stored == [reply["text"]], (
            f"reply answers {attempts} (first: {first_body}); stored agent messages: {stored}"
        )
        assert human.texts("agent") == [reply["text"]]
    finally:
        await agent.close()
        await human.close()


async def test_a_conversation_queued_before_a_redis_restart_can_be_claimed_after_it(
    cluster: Cluster,
) -> None:
    """The queue's truth is in PostgreSQL (state QUEUED); an empty Redis must not make a
    waiting customer unclaimable."""
    waiting = await cluster.queued_customer(cluster.a)
    agent = await logged_in(cluster.b.url, "blair")
    cid = waiting.conversation_id or ""
    try:
        await agent.follow()
        await cluster.restart_redis([waiting], [agent])

        status, queue = await agent.api("GET", "/queue")
        assert status == 200
        (item,) = [i for i in queue["items"] if i["conversation_id"] == cid]
        assert item["state"] == "queued"
        status, body = await agent.api("POST", f"/conversations/{cid}/claim")
        async with cluster.database.store() as store:
            conversation = await store.conversation(cid)
        assert conversation is not None
        assert (status, conversation.state) == (200, ConversationState.ASSIGNED), (
            f"claim answered {status} {body}; the conversation is {conversation.state.value}; "
            f"queue item after the restart: {item}"
        )
        await waiting.wait_for_text("system", "Blair from Customer care joined")
    finally:
        await agent.close()
        await waiting.close()
