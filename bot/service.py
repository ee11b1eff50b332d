"""The conversation service: a thin facade over the pipeline (bot/pipeline/).

Delivery rules (docs/architecture.md): persist, then acknowledge; one conversation is processed
in order, one message at a time (a cursor of handled messages, under a per-conversation broker
lock); state changes are compare-and-set on the conversation version, so a bot reply that comes
back after the conversation left BOT is dropped.
"""

from __future__ import annotations

from bot.core.ports import HandoffDesk
from bot.pipeline.bot_turn import BotTurn
from bot.pipeline.context import Component, EngineContext
from bot.pipeline.intake import Intake
from bot.pipeline.scheduler import Scheduler


class ConversationService(Component):
    """Owns the conversation lifecycle from a customer message to the bot's answer or a
    handoff; channel adapters reach it through ``intake``."""

    def __init__(self, ctx: EngineContext, desk: HandoffDesk) -> None:
        super().__init__(ctx)
        self.bot_turn = BotTurn(ctx, desk)
        self.scheduler = Scheduler(ctx, self.bot_turn, desk)
        self.intake = Intake(ctx, desk, self.scheduler.process_soon)

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
