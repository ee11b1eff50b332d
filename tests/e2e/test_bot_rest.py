"""The trained bot through Rasa's REST channel, with the real action server and demo backend."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from scripts import devctl

pytestmark = pytest.mark.e2e


async def say(stack: devctl.Stack, sender: str, text: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{stack.rasa_url}/webhooks/rest/webhook",
            json={"sender": sender, "message": text},
            params={"token": stack.token},
        ) as resp:
            assert resp.status == 200
            result: list[dict[str, Any]] = await resp.json()
            return result


def joined(replies: list[dict[str, Any]]) -> str:
    return " ".join(r.get("text", "") for r in replies)


async def tracker(stack: devctl.Stack, sender: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{stack.rasa_url}/conversations/{sender}/tracker", params={"token": stack.token}
        ) as resp:
            assert resp.status == 200
            result: dict[str, Any] = await resp.json()
            return result


async def test_order_status_comes_from_the_backend(rasa_stack: devctl.Stack) -> None:
    replies = await say(rasa_stack, f"t-{uuid.uuid4()}", "where is my order 1001?")
    text = joined(replies)
    assert "Order 1001 (Aurora Speaker)" in text
    assert "JD014600003827" in text  # the seeded tracking number, not a canned answer


async def test_unknown_order_number_is_explained(rasa_stack: devctl.Stack) -> None:
    replies = await say(rasa_stack, f"t-{uuid.uuid4()}", "where is my order 9876?")
    text = joined(replies)
    assert "couldn't find an order with the number 9876" in text
    assert "What's your order number?" in text  # the form asks again


async def test_speaker_troubleshooting_then_handoff_signal(rasa_stack: devctl.Stack) -> None:
    sender = f"t-{uuid.uuid4()}"
    first = await say(rasa_stack, sender, "my speaker is too quiet")
    assert "volume-up" in joined(first)
    assert any(r.get("buttons") for r in first), "Did that help? comes with quick replies"
    second = await say(rasa_stack, sender, "no, still too quiet")
    assert "Night mode" in joined(second)
    third = await say(rasa_stack, sender, "still too quiet")
    assert "restart" in joined(third)
    fourth = await say(rasa_stack, sender, "nope still the same")
    assert "connect you with one of our support team" in joined(fourth)
    handoff = await say(rasa_stack, sender, "yes please")
    signals = [r["custom"]["handoff"] for r in handoff if "custom" in r]
    assert len(signals) == 1
    signal = signals[0]
    assert signal["reason"] == "troubleshooting_failed"
    assert len(signal["steps_tried"]) == 3
    assert signal["team"] == "tech_support"
    state = await tracker(rasa_stack, sender)
    assert state["slots"]["steps_tried"] == signal["steps_tried"]


async def test_asking_for_a_person_produces_the_signal(rasa_stack: devctl.Stack) -> None:
    sender = f"t-{uuid.uuid4()}"
    replies = await say(rasa_stack, sender, "I want a human")
    signals = [r["custom"]["handoff"] for r in replies if "custom" in r]
    assert [s["reason"] for s in signals] == ["customer_request"]
    assert signals[0]["version"] == 1 and signals[0]["steps_tried"] == []


async def test_unknown_product_in_repair_booking(rasa_stack: devctl.Stack) -> None:
    sender = f"t-{uuid.uuid4()}"
    first = await say(rasa_stack, sender, "I need to book a repair")
    assert "Which product is it?" in joined(first)
    second = await say(rasa_stack, sender, "Zorg 3000")
    assert 'don\'t know a Brightline product called "Zorg 3000"' in joined(second)
