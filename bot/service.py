"""The conversation service: a thin facade over the pipeline (bot/pipeline/).

Delivery rules (docs/architecture.md): persist, then acknowledge; one conversation is processed
in order, one message at a time (a cursor of handled messages, under a per-conversation broker
lock); state changes are compare-and-set on the conversation version, so a bot reply that comes
back after the conversation left BOT is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.broker import Broker
from bot.config import Settings
from bot.core.ports import HandoffDesk
from bot.core.types import InboundMessage
from bot.pipeline.bot_turn import BotTurn
from bot.pipeline.intake import Accepted, AcceptResult, Intake
from bot.pipeline.outbound import Outbound
from bot.pipeline.records import Records
from bot.pipeline.scheduler import Scheduler
from bot.rasa_client import RasaClient
from bot.store import Store


class ConversationService:
    """Owns the conversation lifecycle from a customer message to the bot's answer or a
    handoff; channel adapters reach it through ``intake``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: Broker,
        rasa: RasaClient,
        records: Records,
        outbound: Outbound,
        desk: HandoffDesk,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings, self.store = settings, store
        self.records, self.outbound = records, outbound
        self.bot_turn = BotTurn(settings, store, broker, rasa, records, outbound, desk, clock)
        self.scheduler = Scheduler(settings, store, broker, records, self.bot_turn, desk)
        self.intake = Intake(settings, store, broker, outbound, desk, self.scheduler.process_soon)

    async def accept(
        self, message: InboundMessage, conversation_id: str | None = None
    ) -> AcceptResult:
        return await self.intake.accept(message, conversation_id)

    async def receive(
        self, message: InboundMessage, conversation_id: str | None = None
    ) -> Accepted:
        return await self.intake.receive(message, conversation_id)

    def process_soon(self, conversation_id: str) -> None:
        self.scheduler.process_soon(conversation_id)

    async def process(self, conversation_id: str) -> None:
        await self.scheduler.process(conversation_id)

    async def drain(self) -> None:
        await self.scheduler.drain()

    async def start_due_handoffs(self) -> int:
        return await self.scheduler.start_due_handoffs()

    def start_retrying(self) -> None:
        self.scheduler.start_retrying()

    async def stop_retrying(self) -> None:
        await self.scheduler.stop_retrying()
