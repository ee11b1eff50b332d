"""Shared fixtures: the trained Rasa model and a running Rasa + action server stack."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from scripts import devctl
from tests.helpers import started

# As `python -m bot serve` does: PTB 23's durations (see bot/__main__.py).
os.environ.setdefault("PTB_TIMEDELTA", "true")


@pytest.fixture(scope="session")
def rasa_model() -> Path:
    """The model for the current training data (make test passes it in CSBOT_MODEL).

    Run through pytest alone, it trains only if no model for this data hash exists yet.
    """
    env_model = os.environ.get("CSBOT_MODEL")
    if env_model:
        path = Path(env_model)
        if not path.exists():
            pytest.fail(f"CSBOT_MODEL={env_model} does not exist; run `make train`")
        return path
    return devctl.train()


@pytest.fixture(scope="session")
def rasa_stack(
    rasa_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[devctl.Stack]:
    """Rasa server and action server on free ports, with a freshly seeded demo backend."""
    run_dir = tmp_path_factory.mktemp("rasa-stack")
    os.environ["BRIGHTLINE_BACKEND_DB"] = str(run_dir / "backend.sqlite3")
    devctl.seed_backend()
    stack = started(
        devctl.Stack(rasa_model, devctl.free_port(), devctl.free_port(), "test-token", run_dir)
    )
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def fixture_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devctl.Stack]:
    """A Rasa server with the gateway tests' own bot (tests/fixture_bot/README.md): keyword NLU
    and rules, trained once per content hash and cached like the shipped model. Tests of the
    gateway's mechanics (outages, recovery, ordering, Rasa's gateway channel) talk to it, so
    a bot designer's change to data/ cannot fail them."""
    model = devctl.train(bot=devctl.FIXTURE_BOT)
    run_dir = tmp_path_factory.mktemp("fixture-stack")
    stack = started(
        devctl.Stack(
            model, devctl.free_port(), devctl.free_port(), "test-token", run_dir, actions=False
        ),
        "Rasa with the fixture bot",
    )
    yield stack
    stack.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client session for the test (customer side)."""
    async with aiohttp.ClientSession() as session:
        yield session
