"""Nothing is lost: messages that arrive while Rasa or the gateway is down are answered later.

Rasa runs the gateway tests' own fixture bot (tests/fixture_bot), so what is tested here is the
gateway, not how the shipped bot reads a sentence."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.appkeys import ENGINE, SERVICE, STORE
from bot.config import Settings
from bot.core.state import ConversationState
from scripts import devctl
from tests.fakes import serve
from tests.gateway_fixtures import gateway_settings, running_gateway
from tests.helpers import CustomerClient, dead_port, forward

pytestmark = pytest.mark.e2e


def no_retry_rounds(tmp_path: Path, stack: devctl.Stack) -> Settings:
    """Gateway settings whose retry round (and due-handoff sweep) runs only at start."""
    rasa = {"urls": [stack.rasa_url], "token": stack.token, "retry_seconds": 300}
    return gateway_settings(tmp_path, stack.rasa_url, stack.token, rasa=rasa)


async def die_here(*args: object, **kwargs: object) -> None:
    """Patched over HandoffStarter.start: the gateway "dies" right there."""
    raise RuntimeError("the gateway died here")


class SwitchableRasa:
    """A proxy in front of the real Rasa that can play dead (503) on demand."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.down = upstream, False
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def forward(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503, text="rasa is restarting")
        return await forward(request, self.upstream)

    async def start(self) -> None:
        self._runner, self.url = await serve("/{tail:.*}", self.forward)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def switchable(fixture_stack: devctl.Stack) -> AsyncIterator[SwitchableRasa]:
    proxy = SwitchableRasa(fixture_stack.rasa_url)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def test_bot_answers_once_rasa_is_back(
    switchable: SwitchableRasa,
    fixture_stack: devctl.Stack,
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    settings = gateway_settings(
        tmp_path,
        switchable.url,
        fixture_stack.token,
        rasa={"urls": [switchable.url], "token": fixture_stack.token, "retry_seconds": 0.3},
    )
    async with running_gateway(settings) as gw:
        customer = await CustomerClient(gw.url, http).connect()
        try:
            switchable.down = True
            await customer.say("where is my order 1001?", "technical problem")
            await customer.send("and is 1008 on its way?")
            await asyncio.sleep(1.0)  # a few failed retries
            switchable.down = False
            await customer.wait_for(
                lambda f: (
                    f.get("type") == "message"
                    and f.get("sender") == "bot"
                    and "Order 1001 is on its way" in f["text"]
                )
            )
            await customer.wait_for(
                lambda f: (
                    f.get("type") == "message" and f.get("sender") == "bot" and "1008" in f["text"]
                )
            )
            await asyncio.sleep(1.0)  # room for a duplicate to show up, if there were one
            answers = [t for t in customer.texts("bot") if "Order 1001" in t]
            assert len(answers) == 1
            bot_texts = customer.texts("bot")
            assert bot_texts.index(answers[0]) < next(
                i for i, t in enumerate(bot_texts) if "1008" in t
            ), "answered in the order asked"
        finally:
            await customer.close()


async def test_message_stored_before_a_gateway_restart_is_answered_after_it(
    fixture_stack: devctl.Stack, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    dead_rasa = f"http://127.0.0.1:{dead_port()}"
    first = gateway_settings(tmp_path, dead_rasa, None)
    async with running_gateway(first) as gw:
        customer = await CustomerClient(gw.url, http).connect()
        await customer.say("where is my order 1001?", "technical problem")
        token = customer.token
        await customer.close()
    # The same database, now with a working Rasa: the restarted gateway picks the message up.
    second = gateway_settings(tmp_path, fixture_stack.rasa_url, fixture_stack.token)
    async with running_gateway(second) as gw:
        back = await CustomerClient(gw.url, http).connect(token=token)
        try:
            await back.wait_for(
                lambda f: (
                    f.get("type") == "message"
                    and f.get("sender") == "bot"
                    and "Order 1001 is on its way" in f["text"]
                )
            )
            await asyncio.sleep(1.0)
            assert sum("Order 1001" in t for t in back.texts("bot")) == 1
        finally:
            await back.close()


async def test_a_handoff_decided_just_before_a_crash_starts_after_the_restart(
    fixture_stack: devctl.Stack,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bot said a person is coming, and the gateway died before the handoff started: the
    turn's transaction marked the handoff due, and the restarted gateway starts it."""
    settings = gateway_settings(tmp_path, fixture_stack.rasa_url, fixture_stack.token)
    async with running_gateway(settings) as gw:
        service, store = gw.app[SERVICE], gw.app[STORE]
        starter = gw.app[ENGINE].starter

        monkeypatch.setattr(starter, "start", die_here)
        customer = await CustomerClient(gw.url, http).connect()
        token = customer.token
        await customer.say("I want to talk to a human", "connecting you")
        await service.drain()
        conversation = await store.conversation(customer.conversation_id)
        assert conversation is not None
        assert conversation.state is ConversationState.BOT
        assert conversation.handoff_due is not None  # committed with the bot's reply
        assert conversation.handoff_due["signal"]["reason"] == "customer_request"
        assert await store.current_handoff(conversation.id) is None
        await customer.close()
    monkeypatch.undo()

    async with running_gateway(settings) as gw:
        back = await CustomerClient(gw.url, http).connect(token=token)
        try:
            await back.wait_for(
                lambda f: f.get("type") == "message" and "in the queue" in f["text"]
            )
            store = gw.app[STORE]
            conversation = await store.conversation(back.conversation_id)
            assert conversation is not None
            assert conversation.state is ConversationState.QUEUED
            assert conversation.handoff_due is None
            handoff = await store.current_handoff(conversation.id)
            assert handoff is not None and handoff.reason == "customer_request"
            assert await gw.app[SERVICE].start_due_handoffs() == 0  # nothing left, nothing twice
            assert len(await store.handoffs_for_conversation(conversation.id)) == 1
        finally:
            await back.close()


async def test_a_due_handoff_starts_when_the_customer_writes_before_the_sweep(
    fixture_stack: devctl.Stack,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The next message of a conversation whose handoff is due goes to the person, not to the
    bot (no sweep runs here: its next round is minutes away)."""
    settings = no_retry_rounds(tmp_path, fixture_stack)
    async with running_gateway(settings) as gw:
        service, store = gw.app[SERVICE], gw.app[STORE]
        starter = gw.app[ENGINE].starter
        real_start = starter.start

        monkeypatch.setattr(starter, "start", die_here)
        customer = await CustomerClient(gw.url, http).connect()
        try:
            await customer.say("I want to talk to a human", "connecting you")
            await service.drain()
            monkeypatch.setattr(starter, "start", real_start)
            turns = len(customer.texts("bot"))
            await customer.say("my order 1001 never arrived", "in the queue")
            await service.drain()
            conversation = await store.conversation(customer.conversation_id)
            assert conversation is not None and conversation.state is ConversationState.QUEUED
            assert conversation.handoff_due is None
            assert len(customer.texts("bot")) == turns, "the bot did not answer it"
            packet = (await store.current_handoff(conversation.id)).packet  # type: ignore[union-attr]
            assert "my order 1001 never arrived" in json.dumps(packet)
        finally:
            await customer.close()


async def test_a_message_that_came_in_during_a_failed_turn_is_not_left_waiting(
    fixture_stack: devctl.Stack,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = no_retry_rounds(tmp_path, fixture_stack)
    async with running_gateway(settings) as gw:
        service = gw.app[SERVICE]
        real_turn = service.bot_turn._bot_turn
        calls = 0

        async def fail_once(*args: object, **kwargs: object) -> bool:
            nonlocal calls
            calls += 1
            if calls == 1:
                await asyncio.sleep(0.5)  # the second message arrives meanwhile
                raise RuntimeError("a broker hiccup")
            return await real_turn(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(service.bot_turn, "_bot_turn", fail_once)
        customer = await CustomerClient(gw.url, http).connect()
        try:
            await customer.send("where is my order 1001?")
            await asyncio.sleep(0.1)
            await customer.send("hello")
            # Both answered well before the next retry round (300 s).
            await customer.wait_for(
                lambda f: (
                    f.get("type") == "message"
                    and f.get("sender") == "bot"
                    and "Order 1001" in f.get("text", "")
                ),
                timeout=20,
            )
            await service.drain()
            assert calls >= 3
        finally:
            await customer.close()


async def test_one_failing_due_handoff_does_not_hold_up_the_others(
    fixture_stack: devctl.Stack,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = no_retry_rounds(tmp_path, fixture_stack)
    async with running_gateway(settings) as gw:
        service, store = gw.app[SERVICE], gw.app[STORE]
        starter = gw.app[ENGINE].starter
        real_start = starter.start
        broken: set[str] = set()

        async def start(conversation: Any, *args: Any, **kwargs: Any) -> Any:
            if not broken or conversation.id in broken:
                raise RuntimeError("cannot start this one")
            return await real_start(conversation, *args, **kwargs)

        monkeypatch.setattr(starter, "start", start)
        ids = []
        for _ in range(2):
            customer = await CustomerClient(gw.url, http).connect()
            await customer.say("I want to talk to a human", "connecting you")
            ids.append(customer.conversation_id)
            await customer.close()
        await service.drain()
        assert [c.id for c in await store.conversations_with_handoff_due()] == ids
        broken.add(ids[0])  # the older one, which the sweep meets first, keeps failing
        assert await service.start_due_handoffs() == 1
        first, second = [await store.conversation(cid) for cid in ids]
        assert first is not None and first.state is ConversationState.BOT
        assert first.handoff_due is not None  # still due: the next round tries again
        assert second is not None and second.state is ConversationState.QUEUED
