"""What the pipeline's steps and the human side's services share: one bundle, built once by
the composition root (bot/wiring.py), instead of the same eight constructor arguments each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bot.broker import Broker
from bot.config import Settings
from bot.metrics import Metrics
from bot.pipeline.files import Files
from bot.pipeline.outbound import Outbound
from bot.pipeline.records import Records
from bot.rasa_client import RasaClient
from bot.store import Store


@dataclass(frozen=True)
class EngineContext:
    """The engine's shared parts; ``clock`` gives aware UTC time (tests pass their own)."""

    settings: Settings
    store: Store
    broker: Broker
    rasa: RasaClient
    records: Records
    outbound: Outbound
    files: Files
    clock: Callable[[], datetime]
    metrics: Metrics = field(default_factory=Metrics)


class Component:
    """Base of the services built on an :class:`EngineContext` (names its parts once)."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self.settings, self.store, self.broker, self.rasa = (
            ctx.settings,
            ctx.store,
            ctx.broker,
            ctx.rasa,
        )
        self.records, self.outbound, self.clock = ctx.records, ctx.outbound, ctx.clock
        self.files = ctx.files
        self.metrics = ctx.metrics
