"""A real gateway app on a fresh SQLite file with one agent, kim; Rasa is a closed port. Test
modules that need another gateway define their own ``gateway`` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.appkeys import STORE
from handoff.auth import hash_password
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway
from tests.helpers import dead_port


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = gateway_settings(tmp_path, f"http://127.0.0.1:{dead_port()}", None)
    async with running_gateway(settings) as gw:
        await gw.app[STORE].add_agent("kim", "Kim", hash_password(AGENT_PASSWORD))
        yield gw
