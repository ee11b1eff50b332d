"""The outbox: outbound messages are retried until their channel accepts them, in order per
conversation, exactly once across workers. Every test runs on SQLite and on PostgreSQL.

The channel is a test double (an external API); the store is always the real one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from bot.appkeys import ENGINE
from bot.broker import InProcessBroker
from bot.config import Settings
from bot.core.errors import DeliveryError, NotFound
from bot.core.models import Conversation, OutboxItem
from bot.core.types import Direction, SenderKind, StoredMessage
from bot.metrics import Metrics
from bot.outbox import OutboxWorker
from bot.rasa_client import RasaClient
from bot.store import Store
from bot.wiring import Engine, build_engine
from tests.bot.conftest import schema_state
from tests.gateway_fixtures import gateway_settings, running_gateway

CHANNEL = "fakechat"


class FakeChannel:
    """A channel API double: records every attempt, fails as scripted, else accepts."""

    def __init__(self, channel: str = CHANNEL) -> None:
        self.channel = channel
        self.attempts: list[int] = []  # message ids, one per deliver() call
        self.delivered: list[StoredMessage] = []
        self.arrived = asyncio.Event()
        self._failures: dict[int, list[Exception]] = {}
        self._always: dict[int, Exception] = {}

    def fail(self, message: StoredMessage, *errors: Exception) -> None:
        """Raise these errors on the message's next attempts, one per attempt."""
        self._failures.setdefault(message.id, []).extend(errors)

    def fail_always(self, message: StoredMessage, error: Exception) -> None:
        self._always[message.id] = error

    async def deliver(self, conversation: Conversation, message: StoredMessage) -> None:
        assert conversation.id == message.conversation_id
        self.attempts.append(message.id)
        await asyncio.sleep(0)  # let other deliveries interleave, like a real HTTP call
        if message.id in self._always:
            raise self._always[message.id]
        planned = self._failures.get(message.id)
        if planned:
            raise planned.pop(0)
        self.delivered.append(message)
        self.arrived.set()

    def texts(self, conversation: Conversation | None = None) -> list[str]:
        return [
            m.text
            for m in self.delivered
            if conversation is None or m.conversation_id == conversation.id
        ]


class Clock:
    """A clock the test moves by hand. It starts a minute ahead of real time, so items queued
    during the test (stamped with the real time) are already due."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=60)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def to(self, when: datetime) -> None:
        self.now = max(self.now, when)


async def new_conversation(store: Store, user: str, channel: str = CHANNEL) -> Conversation:
    customer = await store.find_or_create_customer(channel, user)
    return await store.open_conversation(customer.id, channel, user)


async def queue(store: Store, conversation: Conversation, *texts: str) -> list[StoredMessage]:
    """Store outbound messages and queue them for the conversation's channel, like _send."""
    stored = []
    for text in texts:
        message = await store.append_message(
            conversation.id, direction=Direction.OUTBOUND, sender_kind=SenderKind.BOT, text=text
        )
        await store.outbox_add(message.id, conversation.id, conversation.channel)
        stored.append(message)
    return stored


async def item_of(store: Store, message: StoredMessage) -> OutboxItem:
    items = [
        i for i in await store.outbox_items(message.conversation_id) if i.message_id == message.id
    ]
    assert len(items) == 1
    return items[0]


def seconds_until(when: datetime, clock: Clock) -> float:
    return (when - clock.now).total_seconds()


def worker(store: Store, channel: FakeChannel, clock: Clock, **kwargs: Any) -> OutboxWorker:
    return OutboxWorker(store, {channel.channel: channel}, clock=clock, **kwargs)


# -- store ----------------------------------------------------------------------------------


async def test_outbox_table_matches_its_migration(store: Store, db_url: str) -> None:
    head, revision, diff = await schema_state(db_url)
    assert revision == head == "0015"
    assert diff == []


async def test_outbox_add_is_idempotent_and_checks_the_message(store: Store) -> None:
    conversation = await new_conversation(store, "u1")
    (message,) = await queue(store, conversation, "hello")
    first = (await item_of(store, message)).id
    assert await store.outbox_add(message.id, conversation.id, CHANNEL) == first
    assert len(await store.outbox_items(conversation.id)) == 1
    item = await item_of(store, message)
    assert item == OutboxItem(
        id=first,
        message_id=message.id,
        conversation_id=conversation.id,
        channel=CHANNEL,
        attempts=0,
        next_attempt_at=item.next_attempt_at,
        leased_until=None,
        delivered_at=None,
        gave_up_at=None,
        last_error=None,
    )
    assert item.next_attempt_at.tzinfo is not None
    assert await store.message(message.id) == message
    assert await store.message(message.id + 1000) is None
    with pytest.raises(NotFound):
        await store.outbox_add(message.id + 1000, conversation.id, CHANNEL)
    with pytest.raises(NotFound):
        await store.outbox_delivered(first + 1000, datetime.now(UTC))
    with pytest.raises(NotFound):
        await store.outbox_retry(first + 1000, "x", datetime.now(UTC))
    with pytest.raises(NotFound):
        await store.outbox_give_up(first + 1000, "x", datetime.now(UTC))


async def test_claim_leases_only_due_items_at_the_head_of_each_line(store: Store) -> None:
    clock = Clock()
    a, b, c = [await new_conversation(store, u) for u in ("a", "b", "c")]
    a1, a2 = await queue(store, a, "a1", "a2")
    (b1,) = await queue(store, b, "b1")
    c1, c2 = await queue(store, c, "c1", "c2")

    claimed = await store.outbox_claim(clock.now, 30, limit=2)
    assert [i.message_id for i in claimed] == [a1.id, a2.id]  # oldest first, limit kept
    assert all(i.leased_until == clock.now + timedelta(seconds=30) for i in claimed)
    # b1 and c1 are free; c2 comes along because c1 is in the same batch.
    assert [i.message_id for i in await store.outbox_claim(clock.now, 30)] == [
        b1.id,
        c1.id,
        c2.id,
    ]
    assert await store.outbox_claim(clock.now, 30) == []  # all leased

    # c1 fails and waits 50 s: c2 must not overtake it, even once c2's lease is released.
    c1_item, c2_item = await store.outbox_items(c.id)
    await store.outbox_retry(c1_item.id, "down", clock.now + timedelta(seconds=50))
    await store.outbox_release([c2_item.id])
    await store.outbox_delivered((await item_of(store, b1)).id, clock.now)
    clock.advance(31)  # the leases of a1 and a2 expired (their worker died)
    assert [i.message_id for i in await store.outbox_claim(clock.now, 30)] == [a1.id, a2.id]
    clock.advance(31)
    a1_item, a2_item = await store.outbox_items(a.id)
    await store.outbox_give_up(a1_item.id, "blocked by user", clock.now)
    await store.outbox_release([a2_item.id])
    # c1 is due again (so c2 follows it); a2 goes on after the given-up a1; b1 is done.
    assert [i.message_id for i in await store.outbox_claim(clock.now, 30)] == [
        a2.id,
        c1.id,
        c2.id,
    ]
    c1_item = await item_of(store, c1)
    assert (c1_item.attempts, c1_item.last_error) == (1, "down")
    a1_item = await item_of(store, a1)
    assert (a1_item.attempts, a1_item.gave_up_at, a1_item.leased_until) == (1, clock.now, None)


# -- worker ---------------------------------------------------------------------------------


async def test_delivers_once_and_marks_it_delivered(store: Store) -> None:
    clock = Clock()
    channel = FakeChannel()
    conversation = await new_conversation(store, "u1")
    (message,) = await queue(store, conversation, "Your order has shipped.")
    outbox = worker(store, channel, clock)

    assert await outbox.run_once() == 1
    assert channel.delivered == [message]
    item = await item_of(store, message)
    assert item.delivered_at == clock.now
    assert (item.attempts, item.leased_until, item.gave_up_at, item.last_error) == (
        0,
        None,
        None,
        None,
    )
    clock.advance(3600)
    assert await outbox.run_once() == 0
    assert channel.attempts == [message.id]


async def test_retries_with_backoff_until_the_channel_accepts(store: Store) -> None:
    clock = Clock()
    channel = FakeChannel()
    conversation = await new_conversation(store, "u1")
    (message,) = await queue(store, conversation, "hello")
    channel.fail(
        message,
        DeliveryError("502 Bad Gateway"),
        RuntimeError("connection reset"),  # not a DeliveryError: retried all the same
        DeliveryError("503 Service Unavailable"),
    )
    metrics = Metrics()
    outbox = worker(store, channel, clock, metrics=metrics)

    for failures, error in enumerate(
        ["502 Bad Gateway", "RuntimeError: connection reset", "503 Service Unavailable"],
        start=1,
    ):
        assert await outbox.run_once() == 0
        item = await item_of(store, message)
        assert (item.attempts, item.last_error, item.leased_until) == (failures, error, None)
        expected = 2 ** (failures - 1)  # 1 s, 2 s, 4 s
        assert expected <= seconds_until(item.next_attempt_at, clock) <= expected * 1.1
        # Not due yet: nothing is attempted.
        clock.advance(expected * 0.99)
        assert await outbox.run_once() == 0
        assert len(channel.attempts) == failures
        clock.to(item.next_attempt_at)

    assert await outbox.run_once() == 1
    assert channel.texts() == ["hello"]
    item = await item_of(store, message)
    assert (item.attempts, item.delivered_at, item.gave_up_at) == (3, clock.now, None)
    counted = metrics.deliveries
    assert counted.labels(CHANNEL, "retry")._value.get() == 3
    assert counted.labels(CHANNEL, "delivered")._value.get() == 1
    assert await store.outbox_backlog() == 0


async def test_backoff_follows_retry_after_and_stops_growing_at_max_backoff(store: Store) -> None:
    clock = Clock()
    channel = FakeChannel()
    conversation = await new_conversation(store, "u1")
    limited, capped = await queue(store, conversation, "limited", "capped")
    channel.fail(limited, DeliveryError("429 Too Many Requests", retry_after=42))
    channel.fail(capped, *(DeliveryError("down") for _ in range(4)))
    outbox = worker(store, channel, clock, max_backoff=3)

    assert await outbox.run_once() == 0
    item = await item_of(store, limited)
    assert 42 <= seconds_until(item.next_attempt_at, clock) <= 42 * 1.1
    clock.to(item.next_attempt_at)
    assert await outbox.run_once() == 1  # "limited"; then "capped" fails

    delays = []
    for _ in range(4):
        item = await item_of(store, capped)
        delays.append(seconds_until(item.next_attempt_at, clock))
        clock.to(item.next_attempt_at)
        await outbox.run_once()
    for delay, base in zip(delays, [1, 2, 3, 3], strict=True):
        assert base <= delay <= base * 1.1
    assert channel.texts() == ["limited", "capped"]


async def test_a_failed_message_holds_back_the_rest_of_its_conversation(store: Store) -> None:
    clock = Clock()
    channel = FakeChannel()
    conversation = await new_conversation(store, "u1")
    first, second, third = await queue(store, conversation, "first", "second", "third")
    channel.fail(first, DeliveryError("timeout talking to the channel"))
    outbox = worker(store, channel, clock)

    assert await outbox.run_once() == 0
    assert channel.attempts == [first.id]  # second and third were not tried
    waiting = await store.outbox_items(conversation.id)
    assert [(i.attempts, i.leased_until) for i in waiting] == [(1, None), (0, None), (0, None)]

    # The later messages are due, but must not overtake the first one.
    clock.advance(0.5)
    assert await outbox.run_once() == 0
    assert channel.attempts == [first.id]

    clock.to(waiting[0].next_attempt_at)
    assert await outbox.run_once() == 3
    assert channel.texts() == ["first", "second", "third"]
    assert channel.attempts == [first.id, first.id, second.id, third.id]


async def test_other_conversations_are_not_blocked(store: Store) -> None:
    clock = Clock()
    channel = FakeChannel()
    stuck, fine = await new_conversation(store, "stuck"), await new_conversation(store, "fine")
    (blocked,) = await queue(store, stuck, "to a channel that is down")
    await queue(store, fine, "one", "two")
    channel.fail_always(blocked, DeliveryError("chat unavailable"))
    outbox = worker(store, channel, clock)

    assert await outbox.run_once() == 2
    assert channel.texts(fine) == ["one", "two"]
    await queue(store, fine, "three")
    assert await outbox.run_once() == 1
    assert channel.texts(fine) == ["one", "two", "three"]
    assert channel.texts(stuck) == []


async def test_gives_up_after_max_attempts_and_the_conversation_goes_on(store: Store) -> None:
    clock = Clock()
    channel = FakeChannel()
    conversation = await new_conversation(store, "u1")
    doomed, after = await queue(store, conversation, "doomed", "after")
    channel.fail_always(doomed, DeliveryError("500 Internal Server Error"))
    outbox = worker(store, channel, clock, max_attempts=3)

    with capture_logs() as logs:
        for _ in range(2):
            assert await outbox.run_once() == 0
            clock.to((await item_of(store, doomed)).next_attempt_at)
        assert channel.attempts == [doomed.id, doomed.id]
        assert await outbox.run_once() == 1  # third failure: give up, then "after" goes out
    assert channel.delivered == [after]
    item = await item_of(store, doomed)
    assert (item.attempts, item.gave_up_at, item.delivered_at, item.leased_until) == (
        3,
        clock.now,
        None,
        None,
    )
    assert item.last_error == "500 Internal Server Error (failed 3 times)"
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [(w["event"], w["message_id"], w["reason"]) for w in warnings] == [
        ("outbox gave up on a message", doomed.id, item.last_error)
    ]
    clock.advance(10_000)
    assert await outbox.run_once() == 0
    assert len(channel.attempts) == 4


async def test_gives_up_at_once_on_a_permanent_error(store: Store) -> None:
    clock = Clock()
    channel = FakeChannel()
    conversation = await new_conversation(store, "u1")
    refused, after = await queue(store, conversation, "refused", "after")
    channel.fail(refused, DeliveryError("403 bot was blocked by the user", permanent=True))
    metrics = Metrics()
    outbox = worker(store, channel, clock, metrics=metrics)
    assert await store.outbox_backlog() == 2

    with capture_logs() as logs:
        assert await outbox.run_once() == 1
    assert channel.delivered == [after]
    item = await item_of(store, refused)
    assert (item.attempts, item.gave_up_at) == (1, clock.now)
    assert item.last_error == "permanent: 403 bot was blocked by the user"
    assert metrics.deliveries.labels(CHANNEL, "gave_up")._value.get() == 1
    assert await store.outbox_backlog() == 0
    assert any(e["log_level"] == "warning" and e["outbox_id"] == item.id for e in logs)


async def test_two_workers_deliver_each_item_exactly_once(store: Store, db_url: str) -> None:
    """Two gateway processes (two Stores) on one database share the work, never an item."""
    clock = Clock()
    channel = FakeChannel()
    conversations = [await new_conversation(store, f"u{n}") for n in range(10)]
    texts = {c.id: [f"{c.id}-{n}" for n in range(5)] for c in conversations}
    other = await Store.connect(db_url)
    try:
        # One round each, at the same time.
        for c in conversations:
            await queue(store, c, *texts[c.id])
        workers = [worker(store, channel, clock), worker(other, channel, clock)]
        done = await asyncio.gather(*(w.run_once() for w in workers))
        assert sum(done) == 50
        assert sorted(m.id for m in channel.delivered) == sorted(set(channel.attempts))
        assert len(channel.attempts) == 50
        for c in conversations:
            assert channel.texts(c) == texts[c.id]

        # Small batches, many rounds, both workers racing until all is out.
        channel.delivered.clear()
        channel.attempts.clear()
        for c in conversations:
            await queue(store, c, *texts[c.id])
        workers = [
            worker(store, channel, clock, batch_size=4, concurrency=2),
            worker(other, channel, clock, batch_size=3, concurrency=3),
        ]
        totals = [0, 0]

        async def drain(index: int) -> None:
            for _ in range(500):
                if sum(totals) >= 50:
                    return
                delivered = await workers[index].run_once()
                totals[index] += delivered
                if not delivered:
                    await asyncio.sleep(0.005)
            raise AssertionError(f"worker {index} gave up with {totals} delivered")

        await asyncio.gather(drain(0), drain(1))
        assert sum(totals) == 50 and all(totals), totals  # both took part
        assert len(channel.attempts) == 50
        assert len({m.id for m in channel.delivered}) == 50
        for c in conversations:
            assert channel.texts(c) == texts[c.id]
            assert all(i.delivered_at for i in await store.outbox_items(c.id))
    finally:
        await other.close()


async def test_notify_wakes_a_started_worker(store: Store) -> None:
    channel = FakeChannel()
    conversation = await new_conversation(store, "u1")
    outbox = OutboxWorker(store, {CHANNEL: channel}, poll_seconds=60)
    outbox.start()
    try:
        await asyncio.sleep(0.1)  # the first (empty) round is over; it now waits 60 s
        assert outbox.running
        await queue(store, conversation, "now please")
        started = time.monotonic()
        outbox.notify()
        await asyncio.wait_for(channel.arrived.wait(), 5)
        assert time.monotonic() - started < 2
        assert channel.texts() == ["now please"]
    finally:
        await outbox.stop()
    assert not outbox.running
    assert (await store.outbox_items(conversation.id))[0].delivered_at is not None


class FlakyConnectors(dict[str, FakeChannel]):
    """A connector registry whose first look-up blows up (a bug outside the channel call)."""

    def __init__(self, channel: FakeChannel) -> None:
        super().__init__({channel.channel: channel})
        self.failures = 1

    def get(self, key: str, default: Any = None) -> Any:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("registry exploded")
        return super().get(key, default)


async def test_the_loop_survives_a_failing_round(store: Store) -> None:
    channel = FakeChannel()
    conversation = await new_conversation(store, "u1")
    await queue(store, conversation, "eventually")
    # A short lease: the item of the failed round is left leased and comes back when it ends.
    outbox = OutboxWorker(store, FlakyConnectors(channel), poll_seconds=0.05, lease_seconds=0.3)
    with capture_logs() as logs:
        outbox.start()
        try:
            await asyncio.wait_for(channel.arrived.wait(), 10)
        finally:
            await outbox.stop()
    assert channel.texts() == ["eventually"]
    assert any(e["event"] == "outbox round failed" for e in logs)


# -- service and app ------------------------------------------------------------------------


@pytest.fixture
async def engine(store: Store) -> AsyncIterator[Engine]:
    async with aiohttp.ClientSession() as http:
        rasa = RasaClient(["http://127.0.0.1:9"], None, http)
        settings = Settings.model_validate({"secret_key": "test-secret-key-0123456789abcdef"})
        yield build_engine(settings, store, InProcessBroker(), rasa, outbox_poll_seconds=60)


async def test_send_queues_channel_messages_in_the_outbox(store: Store, engine: Engine) -> None:
    channel = FakeChannel()
    engine.senders[CHANNEL] = channel
    outbound = engine.service.outbound
    conversation = await new_conversation(store, "u1")
    webchat = await new_conversation(store, "visitor", channel="webchat")

    outbox = engine.outbox
    outbox.start()
    try:
        await asyncio.sleep(0.1)
        channel.arrived.clear()
        queued = await outbound.send(conversation, SenderKind.BOT, "via the outbox")
        (item,) = await store.outbox_items(conversation.id)
        assert (item.message_id, item.channel) == (queued.id, CHANNEL)
        await asyncio.wait_for(channel.arrived.wait(), 5)  # notify() woke the worker
        assert channel.texts() == ["via the outbox"]
        # Web chat has no connector: nothing is queued (its sockets get the broker event).
        await outbound.send(webchat, SenderKind.BOT, "hi")
        assert await store.outbox_items(webchat.id) == []
    finally:
        await outbox.stop()
    assert (await store.outbox_items(conversation.id))[0].delivered_at is not None


async def test_the_app_runs_the_worker_while_it_is_up(db_url: str, tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path, "http://127.0.0.1:9", None, database_url=db_url)
    async with running_gateway(settings) as gateway:
        outbox = gateway.app[ENGINE].outbox
        assert outbox is not None and outbox.running
        assert outbox.senders is gateway.app[ENGINE].senders
    assert not outbox.running
