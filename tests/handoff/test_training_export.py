"""The designers' loop: ``python -m bot export-training`` and the dashboard's download write
Rasa YAML of what the bot did not handle. Personal data stays masked; the NLU file passes
``rasa data validate`` together with the project's data; bad input gets a clear message."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from bot.appkeys import DESK, SERVICE, STORE
from handoff.training import (
    ExportError,
    Said,
    Skeleton,
    mask,
    nlu_yaml,
    parse_since,
    stories_yaml,
)
from scripts import devctl
from tests.fakes.rasa import ScriptedRasa
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, scripted_gateway
from tests.helpers import AgentClient, CustomerClient

ROOT = Path(__file__).resolve().parents[2]
PERSONAL = (
    "hi I'm Maya Patel, maya.patel@example.com, +44 7700 900123, SW1A 1AA, "
    "account 88812345, where is my parcel"
)
NLU = {
    "asdf qwerty zxcv": ("nlu_fallback", 0.31),
    PERSONAL: ("order_status", 0.41),
    "where is my parcel": ("order_status", 0.93),
    "my earbuds hiss in the left ear": ("nlu_fallback", 0.22),
    "a person please": ("request_human", 0.99),
}


def test_mask_replaces_personal_data_with_stand_ins() -> None:
    masked = mask(PERSONAL, "Maya Patel")
    assert masked is not None
    for secret in ("maya.patel@", "7700", "900123", "SW1A", "88812345", "Maya", "Patel"):
        assert secret.lower() not in masked.lower(), secret
    assert "name@example.com" in masked and "AB1 2CD" in masked and "Alex" in masked
    assert mask("my card is 4111 1111 1111 1111 thanks") is None, "a card: left out"
    for secret, text in (
        ("NWBK", "GB29 NWBK 6016 1331 9268 19 is my account"),
        ("9012", "the number is 1234 5678 9012 3456 7"),
        ("5678", "ref 1234.5678.9012.3456.78"),
        ("Maya", "I\u2019m Maya Patel"),  # a phone keyboard's apostrophe
        ("Patel", "call me Maya Patel"),
        ("K1A", "send it to K1A 0B1"),
        ("1012", "postcode 1012 AB"),
        ("Baker", "I live at 12 Baker Street"),
    ):
        masked = mask(text)
        assert masked is not None and secret not in masked, (text, masked)
    # What is not personal stays: order numbers, dates, words.
    assert mask("order 1001 is late since 2026-11-20") == "order 1001 is late since 2026-11-20"
    assert mask("I'm looking for a speaker") == "I'm looking for a speaker"
    # Control characters YAML cannot carry are dropped (the file must load).
    assert mask("bad\x1b[31m colour\x07") == "bad (31m colour"
    assert mask("order [1001](order_number)") == "order (1001)(order_number)"


def test_skeletons_without_typed_words_are_left_out() -> None:
    text = stories_yaml(
        [
            Skeleton("c1", "other", [("4111 1111 1111 1111", None)]),  # masked away
            Skeleton("c2", "payment", [("my payment failed twice", "payment_problem")]),
        ],
        {"payment_problem"},
        "# test",
    )
    (story,) = yaml.safe_load(text)["stories"]
    assert "payment" in story["story"] and story["steps"][0]["intent"] == "payment_problem"


def test_since_takes_hours_days_weeks() -> None:
    assert parse_since("7d") == (7, "d") and parse_since(" 24H ") == (24, "h")
    for bad in ("", "7", "0d", "3m", "-1d", "7 days"):
        with pytest.raises(ExportError, match="24h, 7d or 2w"):
            parse_since(bad)


def test_examples_are_grouped_deduplicated_and_sorted_or_left_to_sort() -> None:
    said = [
        Said("c1", "Where is my parcel", "order_status", 0.4, "low_confidence"),
        Said("c2", "where is my  parcel!", "order_status", 0.5, "low_confidence"),
        Said("c3", "asdf", "nlu_fallback", 0.2, "fallback", disposition="payment"),
        Said("c4", "hmm", "nlu_fallback", 0.2, "fallback"),
        Said("c5", "yes", "affirm", 0.99, "before_handoff"),
        Said("c6", "nah", "deny", 0.3, "low_confidence"),
    ]
    text, summary = nlu_yaml(said, {"order_status", "affirm", "nlu_fallback"}, "# test")
    data = yaml.safe_load(text)
    assert data["nlu"] == [{"intent": "order_status", "examples": "- Where is my parcel\n"}]
    assert "# To sort (wrap-up: payment)" in text and "#   - asdf" in text
    assert "# To sort (no wrap-up)" in text and "#   - hmm" in text and "#   - nah" in text
    assert "yes" not in text, "an understood 'yes' before a handoff teaches nothing"
    assert summary == {
        "order_status": 1,
        "to sort (no wrap-up)": 2,
        "to sort (wrap-up: payment)": 1,
    }


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with scripted_gateway(tmp_path, ScriptedRasa(NLU)) as gw:
        yield gw


async def test_export_from_real_conversations(
    gateway: Gateway, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    store, desk = gateway.app[STORE], gateway.app[DESK]
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        for text in ("asdf qwerty zxcv", PERSONAL, "where is my parcel"):
            await customer.say(text, "ok")
        await customer.say("my earbuds hiss in the left ear", "ok")
        await customer.say("a person please", "queue")
        await gateway.app[SERVICE].drain()
        cid = customer.conversation_id or ""
        sam = await store.agent_by_username("sam")
        assert sam is not None
        await desk.claim(cid, sam)
        await desk.resolve(cid, sam, "technical_problem", True)
    finally:
        await customer.close()

    sam_client = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    try:
        url = "/export-training?since=7d&part=nlu"
        async with sam_client.http.get(f"{gateway.url}/console/api{url}") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("application/x-yaml")
            assert "attachment" in resp.headers["Content-Disposition"]
            nlu = await resp.text()
        async with sam_client.http.get(
            f"{gateway.url}/console/api/export-training?since=7d&part=stories"
        ) as resp:
            stories = await resp.text()
        for bad in ("since=7x&part=nlu", "since=7d&part=rules"):
            async with sam_client.http.get(
                f"{gateway.url}/console/api/export-training?{bad}"
            ) as resp:
                assert resp.status == 400, bad
    finally:
        await sam_client.close()

    # The low-confidence message went under the bot's reading, masked; the fallbacks and the
    # handoff's last messages to sort under the wrap-up; the confident one is not exported.
    data = yaml.safe_load(nlu)
    (group,) = data["nlu"]
    assert group["intent"] == "order_status"
    assert "name@example.com" in group["examples"] and "maya.patel" not in nlu
    assert "7700" not in nlu and "SW1A" not in nlu and "88812345" not in nlu
    assert "Maya" not in nlu and "Patel" not in nlu, "a name the customer gave"
    assert "#   - asdf qwerty zxcv" in nlu and "(wrap-up: technical_problem)" in nlu
    assert "my earbuds hiss in the left ear" in nlu
    # The last messages before the handoff count too ("where is my parcel", understood), but
    # not the "a person please" that asked for it.
    assert "- where is my parcel\n" in group["examples"]
    assert "a person please" not in nlu and "1 before handoff" in nlu
    skeleton = yaml.safe_load(stories)["stories"]
    assert len(skeleton) == 1 and "technical_problem" in skeleton[0]["story"]
    users = [step["user"].strip() for step in skeleton[0]["steps"]]
    assert "my earbuds hiss in the left ear" in users and all("maya.patel" not in u for u in users)

    # It passes rasa data validate with the project's data.
    result = await asyncio.to_thread(rasa_validate, nlu, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def rasa_validate(nlu: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``rasa data validate --fail-on-warnings`` on data/ plus the exported NLU file."""
    out = tmp_path / "export"
    out.mkdir()
    (out / "nlu.yml").write_text(nlu)
    return subprocess.run(
        [
            str(devctl.RASA_VENV / "bin" / "rasa"),
            "data",
            "validate",
            "--fail-on-warnings",
            "--data",
            "data",
            str(out / "nlu.yml"),
        ],
        cwd=ROOT,
        env={**os.environ, **devctl.rasa_env()},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_line_says_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yml"
    config.write_text(
        f"database_url: sqlite:///{tmp_path / 'db.sqlite3'}\nsecret_key: {'k' * 32}\n"
    )
    run = [sys.executable, "-m", "bot", "--config", str(config), "export-training"]
    bad = subprocess.run([*run, "--since", "7 days"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "24h, 7d or 2w" in bad.stderr
    no_domain = subprocess.run(
        [*run, "--since", "7d", "--domain", str(tmp_path / "nope.yml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert no_domain.returncode == 2 and "cannot read the domain" in no_domain.stderr
    out = tmp_path / "out"
    good = subprocess.run(
        [*run, "--since", "24h", "--out", str(out)], capture_output=True, text=True, cwd=ROOT
    )
    assert good.returncode == 0, good.stderr
    assert (out / "nlu.yml").exists() and (out / "test_stories.yml").exists()
    assert "0 examples under known intents, 0 test-story skeletons" in good.stdout
    assert yaml.safe_load((out / "nlu.yml").read_text())["nlu"] == []
