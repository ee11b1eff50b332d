"""Loading a newly trained model into running Rasa servers (``make reload``, and ``make run``
noticing a new model): open conversations keep their history and slots, replicas load one
after another, and a failed load leaves Rasa on the model it had.

Real Rasa servers with the gateway tests' fixture bot (tests/fixture_bot) and a variant of it
that greets differently, both trained for real (seconds; cached by content hash).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.rasa_client import RasaClient
from scripts import devctl
from tests.fakes import serve
from tests.helpers import forward, started

NEW_GREETING = "Hello from the newly trained model."


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The fixture bot's model, a variant's folder and the variant's model."""
    original = devctl.train(bot=devctl.FIXTURE_BOT)
    variant = tmp_path_factory.mktemp("bots") / "fixture_bot_variant"
    shutil.copytree(devctl.FIXTURE_BOT, variant)
    domain = variant / "domain.yml"
    domain.write_text(domain.read_text().replace("Hello from the fixture bot.", NEW_GREETING))
    return original, variant, devctl.train(bot=variant)


def start_stack(run_dir: Path, model: Path, trackers: Path | None) -> devctl.Stack:
    return started(
        devctl.Stack(
            model,
            devctl.free_port(),
            devctl.free_port(),
            "reload-token",
            run_dir,
            actions=False,
            trackers=trackers,
        )
    )


@pytest.fixture
def stack(tmp_path: Path, models: tuple[Path, Path, Path]) -> Iterator[devctl.Stack]:
    """Rasa with the fixture bot and its trackers in SQLite, as `make run` starts it."""
    running = start_stack(tmp_path / "run", models[0], tmp_path / "trackers.sqlite3")
    yield running
    running.stop()


async def tracker(http: aiohttp.ClientSession, stack: devctl.Stack, sender: str) -> Any:
    url = f"{stack.rasa_url}/conversations/{sender}/tracker"
    async with http.get(url, params={"token": stack.token}) as resp:
        assert resp.status == 200
        return await resp.json()


def texts(answer: Any) -> list[str]:
    return [reply.text for reply in answer.replies if reply.text]


async def reload_with_the_watcher(watcher: devctl.ModelWatcher) -> None:
    """What make run's loop does, until the variant is loaded (its archive must be 2 s old)."""
    deadline = time.monotonic() + 30
    while not await asyncio.to_thread(watcher.check):
        assert time.monotonic() < deadline, "the watcher never loaded the new model"
        await asyncio.sleep(0.5)


async def test_a_reload_during_an_open_conversation_keeps_its_slots_and_history(
    stack: devctl.Stack, models: tuple[Path, Path, Path], http: aiohttp.ClientSession
) -> None:
    original, variant_bot, variant = models
    client = RasaClient([stack.rasa_url], stack.token, http)
    sender = f"reload-{uuid.uuid4()}"
    assert texts(await client.turn(sender, "where is my order 1008?")) == [
        "Order 1008 is on its way."
    ]
    assert texts(await client.turn(sender, "hello")) == ["Hello from the fixture bot."]
    before = await tracker(http, stack, sender)

    watcher = devctl.ModelWatcher([stack.rasa_url], stack.token, original, bot=variant_bot)
    await reload_with_the_watcher(watcher)
    assert watcher.loaded == variant

    status = devctl._rasa_status(stack.rasa_url, stack.token)
    assert status["model_file"] == variant.name
    after = await tracker(http, stack, sender)
    assert after["slots"]["order_number"] == "1008"
    assert after["events"] == before["events"], "the whole history is still there"
    # The new model answers, and uses the slot the old one filled.
    assert texts(await client.turn(sender, "hello")) == [NEW_GREETING]
    assert texts(await client.turn(sender, "where is my order")) == ["Order 1008 is on its way."]
    assert not await asyncio.to_thread(watcher.check), "loaded once, not again"


async def test_with_trackers_in_memory_a_reload_would_lose_the_conversation(
    tmp_path: Path, models: tuple[Path, Path, Path], http: aiohttp.ClientSession
) -> None:
    """Why make run keeps trackers in SQLite: Rasa's in-memory store goes with the old agent."""
    original, _, variant = models
    stack = start_stack(tmp_path / "run", original, trackers=None)
    try:
        client = RasaClient([stack.rasa_url], stack.token, http)
        sender = f"reload-{uuid.uuid4()}"
        await client.turn(sender, "where is my order 1008?")
        await asyncio.to_thread(devctl.load_model, [stack.rasa_url], stack.token, variant)
        after = await tracker(http, stack, sender)
        assert after["slots"].get("order_number") is None
        assert not [e for e in after["events"] if e["event"] == "user"]
    finally:
        stack.stop()


class RecordingProxy:
    """In front of one Rasa replica: when each model load started and ended."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.loads: list[tuple[float, float]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        response = await forward(request, self.upstream)
        if request.method == "PUT" and request.path == "/model":
            self.loads.append((started, time.monotonic()))
        return response


async def test_replicas_load_the_new_model_one_after_another(
    stack: devctl.Stack, models: tuple[Path, Path, Path], http: aiohttp.ClientSession
) -> None:
    _, _, variant = models
    second_port = devctl.free_port()
    stack.spawn_rasa("rasa-2", second_port)
    second_url = f"http://127.0.0.1:{second_port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if devctl._rasa_status(second_url, stack.token).get("model_file"):
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the second replica did not start"
        await asyncio.sleep(0.5)
    proxies = [RecordingProxy(stack.rasa_url), RecordingProxy(second_url)]
    runners, urls = [], []
    for proxy in proxies:
        runner, url = await serve("/{tail:.*}", proxy.handle)
        runners.append(runner)
        urls.append(url)
    try:
        await asyncio.to_thread(devctl.load_model, urls, stack.token, variant)
    finally:
        for runner in runners:
            await runner.cleanup()
    (first,), (second,) = proxies[0].loads, proxies[1].loads
    assert first[1] <= second[0], "the second replica started loading after the first was done"
    for url in (stack.rasa_url, second_url):
        assert devctl._rasa_status(url, stack.token)["model_file"] == variant.name


async def test_a_model_that_cannot_load_leaves_rasa_on_the_one_it_had(
    stack: devctl.Stack,
    models: tuple[Path, Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original, variant_bot, _ = models
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a model")
    with pytest.raises(devctl.SetupError, match="keeps the model it had"):
        await asyncio.to_thread(devctl.load_model, [stack.rasa_url], stack.token, broken)
    assert devctl._rasa_status(stack.rasa_url, stack.token)["model_file"] == original.name

    # make run's watcher says so once, records it for make reload, and keeps the old model.
    # (A models/ of the test's own: the corrupt archive must never be left in the real one.)
    monkeypatch.setattr(devctl, "MODELS", tmp_path / "models")
    bad = devctl.models_dir(variant_bot) / f"{devctl.model_hash(variant_bot)}.tar.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a model either")
    old = time.time() - 10
    os.utime(bad, (old, old))
    watcher = devctl.ModelWatcher([stack.rasa_url], stack.token, original, bot=variant_bot)
    assert await asyncio.to_thread(watcher.check), "a failure is news for make reload"
    assert watcher.failed == bad and watcher.loaded == original
    assert watcher.error is not None and "keeps the model it had" in watcher.error
    assert not await asyncio.to_thread(watcher.check), "not retried for ever"
    state = tmp_path / "stack.json"
    watcher.save_state(state)
    assert json.loads(state.read_text())["failed"] == str(bad)

    # make reload, waiting for that model, says at once that it failed and why.
    monkeypatch.setattr(devctl, "RUN_STATE", state)
    monkeypatch.setattr(devctl, "setup", lambda: None)
    monkeypatch.setattr(devctl, "train", lambda **_: bad)
    started = time.monotonic()
    with pytest.raises(devctl.SetupError, match="could not load"):
        await asyncio.to_thread(devctl.cmd_reload, argparse.Namespace(timeout=60))
    assert time.monotonic() - started < 10


def test_the_watcher_survives_a_file_that_vanishes_while_it_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def vanished(_bot: Path | None = None) -> str:
        raise FileNotFoundError("data/.nlu.yml.swp")

    monkeypatch.setattr(devctl, "model_hash", vanished)
    watcher = devctl.ModelWatcher(["http://127.0.0.1:9"], "t", tmp_path / "m.tar.gz")
    assert watcher.check() is False
    assert "could not check for a new model" in capsys.readouterr().out


def test_make_reload_waits_for_the_running_stack_to_load_the_model(
    stack: devctl.Stack,
    models: tuple[Path, Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`make reload` trains, then waits until make run's watcher has loaded the model."""
    original, variant_bot, variant = models
    state = tmp_path / "stack.json"
    monkeypatch.setattr(devctl, "RUN_STATE", state)
    monkeypatch.setattr(devctl, "setup", lambda: None)
    monkeypatch.setattr(devctl, "train", lambda **_: variant)
    watcher = devctl.ModelWatcher([stack.rasa_url], stack.token, original, bot=variant_bot)

    def make_run_loop() -> None:
        watcher.save_state(state)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if watcher.check():
                watcher.save_state(state)
                return
            time.sleep(0.5)

    loop = threading.Thread(target=make_run_loop)
    loop.start()
    time.sleep(0.2)  # the state file exists, as it does once make run is up
    devctl.cmd_reload(argparse.Namespace(timeout=60))
    loop.join()
    assert json.loads(state.read_text())["model"] == str(variant)
    assert "Rasa runs the new model" in capsys.readouterr().out


def test_make_reload_without_a_running_stack_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(devctl, "RUN_STATE", tmp_path / "stack.json")
    monkeypatch.setattr(devctl, "setup", lambda: None)
    monkeypatch.setattr(devctl, "train", lambda **_: tmp_path / "model.tar.gz")
    devctl.cmd_reload(argparse.Namespace(timeout=1))
    assert "`make run` is not running here" in capsys.readouterr().out
