"""Parsing what Rasa's channels answer: the gateway channel's object, the REST channel's list."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot import rasa_client
from bot.core.types import BotReply, Button, Understood
from bot.rasa_client import (
    GATEWAY_WEBHOOK,
    REST_WEBHOOK,
    BotAnswer,
    RasaClient,
    RasaUnavailable,
    parse_answer,
    parse_replies,
)

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


def test_an_error_rasa_reported_is_kept() -> None:
    answer = parse_answer({"messages": ITEMS[:1], "error": "KeyError: 'x'", "nlu": None})
    assert answer.error == "KeyError: 'x'" and answer.replies == REPLIES[:1]
    assert parse_answer({"messages": []}).error is None


async def test_a_rasa_without_the_gateway_channel_is_asked_again_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """404 on the gateway channel: REST from then on, until the recheck time has passed."""
    calls: list[str] = []

    async def gateway(request: web.Request) -> web.Response:
        calls.append("gateway")
        return web.json_response({"reason": "not here"}, status=404)

    async def rest(request: web.Request) -> web.Response:
        calls.append("rest")
        return web.json_response([{"recipient_id": "c", "text": "hi"}])

    app = web.Application()
    app.router.add_post(GATEWAY_WEBHOOK, gateway)
    app.router.add_post(REST_WEBHOOK, rest)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            client = RasaClient([f"http://127.0.0.1:{port}"], None, http)
            assert (await client.turn("c", "hello")).replies == [BotReply("hi")]
            await client.turn("c", "again")
            assert calls == ["gateway", "rest", "rest"]
            monkeypatch.setattr(rasa_client, "REST_ONLY_RECHECK_SECONDS", 0.0)
            await client.turn("c", "later")
            assert calls[3:] == ["gateway", "rest"]
    finally:
        await runner.cleanup()


def test_a_custom_response_degrades_to_its_text() -> None:
    (card, signal, nothing) = parse_replies(
        [
            {"custom": {"type": "card", "text": "Your order ships Monday", "image": "x"}},
            {"text": "Connecting you", "custom": {"handoff": {"reason": "customer_request"}}},
            {"custom": {"type": "carousel"}},
        ]
    )
    assert card.text == "Your order ships Monday"
    assert signal.text == "Connecting you" and signal.custom == {
        "handoff": {"reason": "customer_request"}
    }
    assert nothing.text is None and nothing.custom == {"type": "carousel"}


def test_image_and_attachment_responses_keep_only_web_addresses() -> None:
    replies = parse_replies(
        [
            {"text": "Here:", "image": "https://cdn.example/cheer%20up.jpg"},
            {"image": "javascript:alert(1)"},
            {"image": "data:image/svg+xml;base64,PHN2Zz4="},
            {"image": "//no-scheme.example/x.png"},
            {"attachment": {"url": "https://shop.example/guide.pdf", "name": "Setup guide"}},
            {"attachment": ["not", "a", "url"]},
        ]
    )
    first = replies[0].attachment
    assert first is not None
    assert (first.kind, first.name, first.content_type, first.url) == (
        "image",
        "cheer up.jpg",
        "image/jpeg",
        "https://cdn.example/cheer%20up.jpg",
    )
    assert [r.attachment for r in replies[1:4]] == [None, None, None]
    guide = replies[4].attachment
    assert guide is not None and (guide.kind, guide.name) == ("file", "Setup guide")
    assert replies[5].attachment is None
