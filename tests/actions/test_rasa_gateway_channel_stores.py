"""The tracker stores of rasa_addons/gateway_channel.py, in Rasa's own environment: they
store trackers like Rasa's, and note each conversation's latest parse for the gateway channel.
The Redis one (scale mode) runs against the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import redis
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ConversationPaused,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_addons import gateway_channel as channel

REDIS_URL = os.environ.get("CSBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _tracker(sender: str, *, paused: bool = False) -> DialogueStateTracker:
    events = [
        UserUttered("hi", {"name": "greet", "confidence": 0.91}, message_id="m-1"),
        UserUttered(
            "where is my order", {"name": "order_status", "confidence": 0.77}, message_id="m-2"
        ),
    ]
    if paused:
        events.append(ConversationPaused())
    return DialogueStateTracker.from_events(sender, events)


def _check_store(store: channel._NotesLatestParse, sender: str) -> None:
    asyncio.run(store.save(_tracker(sender)))
    assert channel._notes[sender] == {
        "message_id": "m-2",
        "intent": "order_status",
        "confidence": 0.77,
        "paused": False,
    }
    back = asyncio.run(store.retrieve(sender))  # type: ignore[attr-defined]
    assert back is not None and back.latest_message.text == "where is my order"
    asyncio.run(store.save(_tracker(sender, paused=True)))
    assert channel._notes[sender]["paused"] is True


def test_the_in_memory_store_notes_the_latest_parse() -> None:
    store = channel.GatewayInMemoryTrackerStore(Domain.empty())
    _check_store(store, f"mem-{uuid.uuid4().hex}")


def test_the_redis_store_notes_it_too() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: start it (scale-mode test)")
    prefix = f"csbottest{uuid.uuid4().hex[:8]}"  # Rasa takes letters and digits only
    kwargs = client.connection_pool.connection_kwargs
    store = channel.GatewayRedisTrackerStore(
        Domain.empty(),
        host=kwargs.get("host", "127.0.0.1"),
        port=kwargs.get("port", 6379),
        db=kwargs.get("db", 0),
        key_prefix=prefix,
    )
    sender = f"redis-{uuid.uuid4().hex}"
    try:
        _check_store(store, sender)
        assert any(prefix in key.decode() for key in client.keys(f"{prefix}*"))
    finally:
        for key in client.keys(f"{prefix}*"):
            client.delete(key)


def test_a_reverted_message_is_noted_with_its_own_parse() -> None:
    """Rasa's core fallback (action_default_fallback) reverts the customer's message, so the
    tracker's latest_message is the message before it; the note must still be the newest
    message's own parse, which is what the gateway stores with that message."""
    sender = f"revert-{uuid.uuid4().hex}"
    tracker = DialogueStateTracker.from_events(
        sender,
        [
            UserUttered("hi", {"name": "greet", "confidence": 0.99}, message_id="m-1"),
            ActionExecuted("utter_greet"),
            UserUttered(
                "is 1008 on its way?", {"name": "inform", "confidence": 0.67}, message_id="m-2"
            ),
            ActionExecuted("action_default_fallback"),
            UserUtteranceReverted(),
        ],
    )
    assert tracker.latest_message is not None and tracker.latest_message.message_id == "m-1"
    store = channel.GatewayInMemoryTrackerStore(Domain.empty())
    asyncio.run(store.save(tracker))
    note = channel._notes[sender]
    assert (note["message_id"], note["intent"], note["confidence"]) == ("m-2", "inform", 0.67)


def test_old_notes_are_dropped_beyond_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channel, "MAX_NOTES", 3)
    store = channel.GatewayInMemoryTrackerStore(Domain.empty())
    senders = [f"cap-{i}-{uuid.uuid4().hex}" for i in range(5)]
    for sender in senders:
        asyncio.run(store.save(_tracker(sender)))
    assert [s for s in senders if s in channel._notes] == senders[2:]
