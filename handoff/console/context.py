"""Console settings, paths and per-app state (one ConsoleContext per gateway process)."""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from bot.config import Settings
from bot.core.models import Agent
from handoff.auth import (
    Session,
    SessionCodec,
)
from handoff.desk import AgentDesk
from handoff.throttle import LoginThrottle

HERE = Path(__file__).resolve().parent.parent  # handoff/: templates/ and static/ live there
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
PREFIX = "/console"
STATIC_PREFIX = f"{PREFIX}/static/"
PRESENCE_TTL_SECONDS = 30
PRESENCE_INTERVAL_SECONDS = 10.0
WRONG_LOGIN = "Wrong username or password"
MAX_USERNAME_CHARS = 200
MAX_PASSWORD_CHARS = 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HealthReport = Callable[[], Awaitable[dict[str, Any]]]
ApiHandler = Callable[[web.Request, Agent], Awaitable[Any]]
PageHandler = Callable[[web.Request, Agent, Session], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """A client error the API reports as ``{"error": code, "message": message}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclasses.dataclass
class ConsoleContext:
    """Per-app console state (one per gateway process)."""

    templates: jinja2.Environment
    throttle: LoginThrottle
    static_version: str
    settings: Settings
    sockets: weakref.WeakSet[web.WebSocketResponse] = dataclasses.field(
        default_factory=weakref.WeakSet
    )
    presence: dict[str, int] = dataclasses.field(default_factory=dict)  # member -> open sockets
    codec: SessionCodec = dataclasses.field(init=False)
    _desk: AgentDesk | None = None
    health: HealthReport | None = None

    def __post_init__(self) -> None:
        self.codec = SessionCodec(self.settings.secret_key)

    @property
    def desk(self) -> AgentDesk:
        if self._desk is None:
            raise web.HTTPServiceUnavailable(text="The console is starting; try again shortly.")
        return self._desk

    def start(self, desk: AgentDesk, health: HealthReport | None = None) -> None:
        """Called once the gateway is up, with the desk every console request goes through and
        the detailed health report supervisors may read."""
        self._desk = desk
        self.health = health


CONSOLE = web.AppKey("csbot_console", ConsoleContext)
