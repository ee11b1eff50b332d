"""Run the real gateway app in-process on a free port, on a fresh database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.app import create_app, server_options
from bot.config import Settings
from bot.core.identity import shop_user_hash
from tests.fakes.rasa import ScriptedRasa
from tests.helpers import listen

AGENT_PASSWORD = "correct-horse-battery"


@dataclass
class Gateway:
    app: web.Application
    url: str
    settings: Settings


SHOP_SECRET = "test-shop-secret-0123456789"


def shop_user(user_id: str, secret: str = SHOP_SECRET) -> dict[str, str]:
    """What a shop's page passes to the widget for a signed-in customer (docs/widget.md)."""
    return {"id": user_id, "hash": shop_user_hash(secret, user_id)}


# Maya Patel, customer 1 of the demo backend (orders 1001 and 1005, device SN100234).
MAYA = "1"


def gateway_settings(tmp: Path, rasa_url: str, rasa_token: str | None, **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "database_url": f"sqlite:///{tmp / 'gateway.sqlite3'}",
            "secret_key": "test-secret-key-0123456789abcdef",
            "rasa": {"urls": [rasa_url], "token": rasa_token, "timeout_seconds": 10},
            "demo_agent": {"username": "sam", "password": AGENT_PASSWORD, "display_name": "Sam"},
            "identity": {"shop_secret": SHOP_SECRET},
            "files": {"dir": str(tmp / "files")},
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    app = create_app(settings)
    runner = web.AppRunner(app, **server_options(settings))
    await runner.setup()
    port = await listen(runner)
    try:
        yield Gateway(app, f"http://127.0.0.1:{port}", settings)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def scripted_gateway(tmp: Path, rasa: ScriptedRasa, **extra: Any) -> AsyncIterator[Gateway]:
    """A gateway whose bot is the scripted Rasa (started here, closed afterwards)."""
    await rasa.start()
    try:
        async with running_gateway(gateway_settings(tmp, rasa.url, None, **extra)) as gw:
            yield gw
    finally:
        await rasa.close()
