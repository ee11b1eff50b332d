"""``kill -9`` of the gateway in the middle of a load of customer messages, then a restart on the
same port and database: nothing the customers saw acknowledged is lost or doubled, and every
answer of the bot reaches them exactly once after their widgets reconnect.

Rasa answers with the gateway tests' own fixture bot (tests/fixture_bot): each customer asks
about order numbers, and each answer names the order, so answers can be matched to questions.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from scripts import devctl
from tests.reliability.support import (
    Database,
    Gateways,
    WidgetClient,
    assert_gap_free,
    inbound,
    order_numbers,
    outbound,
    wait_until,
    write_gateway_config,
)

pytestmark = pytest.mark.e2e

CUSTOMERS = 10
MESSAGES = 10
PACE_SECONDS = 0.2  # between one customer's messages; faster than the bot answers
BURST = (4, 5, 6)  # typed back to back by every customer at once...
# ...and the gateway is killed when half of the burst is acked, in the middle of storing it
KILL_AT_ACKS = CUSTOMERS * (BURST[0] - 1) + CUSTOMERS * len(BURST) // 2


# The orders each customer asks about, in turn.
ORDERS = (("1001", "1005"), ("1002", "1006"))


def question(customer: int, n: int) -> str:
    """Message ``n`` of a customer: a question about an order, which the bot answers in one
    message that names the order (the #c..m.. tag makes every message unique)."""
    return f"where is my order {ORDERS[customer % 2][n % 2]}? #c{customer}m{n}"


async def state_at_kill(
    database: Database, customers: list[WidgetClient], acked: dict[str, dict[str, int]]
) -> tuple[int, int]:
    """Messages stored but not answered yet, and stored but not acknowledged to the client."""
    unanswered = stored_unacked = 0
    async with database.store() as store:
        for customer in customers:
            cid = customer.conversation_id or ""
            conversation = await store.conversation(cid)
            assert conversation is not None
            for message in inbound(await store.messages(cid)):
                unanswered += message.seq > conversation.bot_cursor
                stored_unacked += message.channel_message_id not in acked[cid]
    return unanswered, stored_unacked


async def test_gateway_killed_during_load_loses_and_doubles_nothing(
    fixture_stack: devctl.Stack,
    database: Database,
    gateways: Gateways,
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    config = write_gateway_config(tmp_path / "gateway.yml")
    gateway = await gateways.start(
        "gw",
        config,
        DATABASE_URL=database.url,
        RASA_URL=fixture_stack.rasa_url,
        RASA_TOKEN=fixture_stack.token,
    )
    customers = await asyncio.gather(
        *(WidgetClient(gateway.url, http).start() for index in range(CUSTOMERS))
    )

    async def type_messages(index: int, customer: WidgetClient) -> None:
        for n in range(1, MESSAGES + 1):
            await customer.send(question(index, n))
            if n not in BURST[:-1]:
                await asyncio.sleep(PACE_SECONDS)

    def acks() -> int:
        return sum(len(c.acked) for c in customers)

    typing = asyncio.gather(*(type_messages(i, c) for i, c in enumerate(customers)))
    try:
        await wait_until(lambda: acks() >= KILL_AT_ACKS, 30, f"{KILL_AT_ACKS} acks", 0.002)

        await gateway.kill()
        killed_at = time.monotonic()
        acked_before = {c.conversation_id or "": dict(c.acked) for c in customers}
        unanswered_at_kill, stored_unacked_at_kill = await state_at_kill(
            database, customers, acked_before
        )
        await asyncio.sleep(0.5)  # customers keep typing into the void
        await gateway.start()
        restarted_after = time.monotonic() - killed_at

        await typing
        await asyncio.gather(*(c.wait_all_acked(30) for c in customers))

        def answered(customer: WidgetClient) -> bool:
            return len(order_numbers(customer.texts("bot"))) >= MESSAGES

        await wait_until(
            lambda: all(answered(c) for c in customers),
            90,
            "an answer to every question",
            describe=lambda: (
                "answers shown per customer: "
                + str([len(order_numbers(c.texts("bot"))) for c in customers])
            ),
        )
        await asyncio.sleep(1.0)  # room for a doubled answer to show up

        assert unanswered_at_kill > 0, "the kill should leave stored, unanswered messages"
        stats = Counter[str]()
        for index, customer in enumerate(customers):
            cid = customer.conversation_id or ""
            messages = await database.messages(cid)
            assert_gap_free(messages)

            # Every message stored exactly once, in the order typed, under the acked seq.
            questions = inbound(messages)
            assert [m.text for m in questions] == [
                question(index, n) for n in range(1, MESSAGES + 1)
            ]
            client_ids = [m.channel_message_id for m in questions]
            assert client_ids == [o.client_id for o in customer.sent]
            assert {m.channel_message_id: m.seq for m in questions} == customer.acked
            for client_id, seq in acked_before[cid].items():
                assert customer.acked[client_id] == seq, "an ack before the crash still holds"

            # One answer per question, in order, none lost, none doubled, nothing else.
            answers = outbound(messages)
            assert [m.sender_kind.value for m in answers] == ["bot"] * MESSAGES, [
                m.text for m in answers
            ]
            assert order_numbers([m.text for m in answers]) == order_numbers(
                [m.text for m in questions]
            )

            # The widget shows exactly what is stored: every seq, once, with the same text.
            shown = {seq: frame["text"] for seq, frame in customer.rendered.items()}
            assert shown == {m.seq: m.text for m in messages}
            assert customer.texts("bot") == [m.text for m in answers]
            assert not customer.stats.anomalies and not customer.errors

            stats["reconnects"] += customer.stats.connects - 1
            stats["sent after a reconnect"] += customer.stats.resent
            stats["frames for a seq already shown"] += customer.stats.redelivered
            stats["acked before the kill"] += len(acked_before[cid])
        assert stats["reconnects"] >= CUSTOMERS
        print(
            f"\nrestarted {restarted_after:.1f} s after the kill; "
            f"at the kill {unanswered_at_kill} messages were stored and unanswered, "
            f"{stored_unacked_at_kill} stored and not acked; {dict(stats)}"
        )
    finally:
        typing.cancel()
        await asyncio.gather(typing, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in customers))
