"""Parsing what Rasa's channels answer: the gateway channel's object, the REST channel's list."""

from __future__ import annotations

from typing import Any

import pytest

from bot.rasa_client import BotAnswer, BotReply, RasaUnavailable, Understood, parse_answer
from bot.types import Button

ITEMS = [
    {"recipient_id": "c1", "text": "Hi!", "buttons": [{"title": "Yes", "payload": "/affirm"}]},
    {"recipient_id": "c1", "custom": {"handoff": {"version": 1}}},
]
REPLIES = [
    BotReply("Hi!", [Button("Yes", "/affirm")]),
    BotReply(None, [], {"handoff": {"version": 1}}),
]


def test_the_rest_channel_list_has_no_nlu() -> None:
    assert parse_answer(ITEMS) == BotAnswer(REPLIES, None, None)


def test_the_gateway_channel_object_carries_nlu_and_pause() -> None:
    body = {"messages": ITEMS, "nlu": {"intent": "greet", "confidence": 1}, "paused": False}
    assert parse_answer(body) == BotAnswer(REPLIES, Understood("greet", 1.0), False)
    quiet = {"messages": [], "nlu": None, "paused": None}
    assert parse_answer(quiet) == BotAnswer([], None, None)


@pytest.mark.parametrize(
    ("nlu", "expected"),
    [
        ({"intent": None, "confidence": None}, Understood(None, None)),
        ({"intent": 3, "confidence": "high"}, Understood(None, None)),
        ("greet", None),
    ],
)
def test_odd_nlu_values_are_dropped_not_trusted(nlu: Any, expected: Understood | None) -> None:
    assert parse_answer({"messages": [], "nlu": nlu}).nlu == expected


@pytest.mark.parametrize("body", [None, "text", {"nlu": {}}, {"messages": "x"}, 5])
def test_anything_else_is_an_unexpected_answer(body: Any) -> None:
    with pytest.raises(RasaUnavailable, match="unexpected answer"):
        parse_answer(body)
