"""What every channel connector is: two translation steps around the one shared intake.

A connector turns a channel's update into an ``InboundMessage`` and hands it to
:meth:`ChannelConnector.accept`, which runs the intake's chain of checks (own messages, empty
messages, persist + dedupe, schedule the bot; bot/pipeline/intake.py); and turns our
``StoredMessage`` into a channel API call in ``deliver()``, the ``ChannelSender`` side that the
outbox calls and retries. The intake is injected at start; connectors never see the app's
internals. Adding a channel means one module with a subclass and a settings entry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from aiohttp import web

from bot.core.models import Conversation
from bot.core.types import InboundMessage, StoredMessage
from bot.pipeline.intake import DEFAULT_CHECKS, AcceptResult, InboundCheck, Intake


class ConnectorNotStarted(RuntimeError):
    """A webhook arrived before the gateway finished starting."""


class UsesIntake:
    """A channel's routes exist before the gateway is up; the intake arrives at ``start``."""

    channel: ClassVar[str]

    def __init__(self) -> None:
        self._intake: Intake | None = None

    @property
    def intake(self) -> Intake:
        if self._intake is None:
            raise ConnectorNotStarted(f"the {self.channel} channel has not started yet")
        return self._intake

    async def start(self, intake: Intake) -> None:
        """Called once the gateway is up, with the intake to hand updates to. Subclasses that
        register webhooks, poll or check a token do it after calling this."""
        self._intake = intake


class ChannelConnector(UsesIntake, ABC):
    """Base class of the Telegram, Slack, … connectors."""

    checks: ClassVar[Sequence[InboundCheck]] = DEFAULT_CHECKS

    @abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Register the channel's webhook routes (if any) on the gateway app."""

    async def stop(self) -> None:
        """Called on shutdown."""
        return None

    @abstractmethod
    async def deliver(self, conversation: Conversation, message: StoredMessage) -> None:
        """Send one stored outbound message; raise DeliveryError when the channel refuses."""

    async def accept(self, message: InboundMessage) -> AcceptResult:
        """Run the shared checks, then persist (deduped on the channel's message id) and let
        the bot answer in the background. Returns quickly: webhooks wait."""
        return await self.intake.accept(message, checks=self.checks)
