"""Fixtures for the action tests: a freshly seeded demo backend and a tracker factory."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import backend


@pytest.fixture(autouse=True)
def demo_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "backend.sqlite3"
    monkeypatch.setenv("BRIGHTLINE_BACKEND_DB", str(path))
    backend.seed(path)
    yield path


def make_tracker(
    slots: dict[str, Any] | None = None,
    intent: str = "greet",
    events: list[dict[str, Any]] | None = None,
    active_loop: str | None = None,
    verified: int | None = None,
    text: str = "...",
) -> Tracker:
    """A tracker; ``verified`` is the backend customer id the gateway vouches for (metadata)."""
    metadata = {"verified_customer_id": str(verified)} if verified is not None else {}
    latest = {
        "intent": {"name": intent, "confidence": 0.99},
        "entities": [],
        "text": text,
        "metadata": metadata,
    }
    return Tracker(
        sender_id="test-conversation",
        slots=slots or {},
        latest_message=latest,
        events=events or [{"event": "user", "parse_data": latest}],
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


def run_action(action: Action, tracker: Tracker) -> tuple[list[dict[str, Any]], list[Any]]:
    """Run an action; returns (messages sent, events returned)."""
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, {}))
    return dispatcher.messages, events
