"""Composition root: builds the engine and the human side and wires them together.

Only this module, ``bot/app.py`` and ``bot/__main__.py`` may import both the engine and the
human side (``handoff/``) or the channels (``connectors/``); the import-linter contracts in
``.importlinter`` hold every other module to its layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.broker import Broker
from bot.config import Settings
from bot.core.clock import utcnow
from bot.core.ports import ChannelSender, FileStorage
from bot.filestore import LocalFileStorage, S3FileStorage
from bot.metrics import Metrics
from bot.outbox import OutboxWorker
from bot.pipeline.context import EngineContext
from bot.pipeline.files import Files
from bot.pipeline.outbound import Outbound
from bot.pipeline.records import Records
from bot.rasa_client import RasaClient
from bot.service import ConversationService
from bot.store import Store
from handoff.desk import AgentDesk
from handoff.quality import QualityWatch
from handoff.queue import HandoffQueue
from handoff.reports import Dashboard
from handoff.routing import Router
from handoff.sla import SlaKeeper
from handoff.start import HandoffStarter


@dataclass(frozen=True)
class Engine:
    """What the gateway runs: the conversation service, the agents' desk, the outbox."""

    service: ConversationService
    desk: AgentDesk
    queue: HandoffQueue
    router: Router
    starter: HandoffStarter
    outbox: OutboxWorker
    senders: dict[str, ChannelSender]
    metrics: Metrics
    files: Files


def file_storage(settings: Settings, rasa: RasaClient) -> FileStorage:
    """The configured file storage: a local directory, or an S3-compatible bucket reached
    through the gateway's HTTP session."""
    if settings.files.storage == "s3":
        assert settings.files.s3 is not None  # checked when the settings loaded
        return S3FileStorage(settings.files.s3, rasa.session)
    return LocalFileStorage(settings.files.dir)


def build_engine(
    settings: Settings,
    store: Store,
    broker: Broker,
    rasa: RasaClient,
    senders: Mapping[str, ChannelSender] | None = None,
    clock: Callable[[], datetime] = utcnow,
    outbox_poll_seconds: float | None = None,
) -> Engine:
    """Wire the pipeline, the handoff desk and the outbox over one store, broker and Rasa.

    ``senders`` (channel → sender) may be filled later, as connectors start."""
    channel_senders: dict[str, ChannelSender] = dict(senders or {})
    metrics = Metrics()
    outbox = (
        OutboxWorker(store, channel_senders, metrics=metrics)
        if outbox_poll_seconds is None
        else OutboxWorker(store, channel_senders, poll_seconds=outbox_poll_seconds, metrics=metrics)
    )
    outbound = Outbound(store, broker, channel_senders, outbox.notify)
    files = Files(store, file_storage(settings, rasa), settings.files)
    ctx = EngineContext(
        settings, store, broker, rasa, Records(store), outbound, files, clock, metrics
    )
    queue = HandoffQueue(ctx)
    router = Router(ctx, queue)
    quality = QualityWatch(ctx)
    starter = HandoffStarter(ctx, queue, router, SlaKeeper(ctx, queue, router), quality)
    desk = AgentDesk(ctx, queue, starter, router, Dashboard(ctx))
    router.on_assigned = desk.announce_assignment
    service = ConversationService(ctx, starter)
    return Engine(service, desk, queue, router, starter, outbox, channel_senders, metrics, files)
