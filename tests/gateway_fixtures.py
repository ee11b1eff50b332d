"""Run the real gateway app in-process on a free port, on a fresh database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.app import create_app
from bot.config import Settings
from tests.helpers import listen

AGENT_PASSWORD = "correct-horse-battery"


@dataclass
class Gateway:
    app: web.Application
    url: str
    settings: Settings


def gateway_settings(tmp: Path, rasa_url: str, rasa_token: str | None, **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "database_url": f"sqlite:///{tmp / 'gateway.sqlite3'}",
            "secret_key": "test-secret-key-0123456789abcdef",
            "rasa": {"urls": [rasa_url], "token": rasa_token, "timeout_seconds": 10},
            "demo_agent": {"username": "sam", "password": AGENT_PASSWORD, "display_name": "Sam"},
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    port = await listen(runner)
    try:
        yield Gateway(app, f"http://127.0.0.1:{port}", settings)
    finally:
        await runner.cleanup()
