"""What every channel connector is: two translation steps around one shared path.

A connector turns a channel's update into an ``InboundMessage`` and hands it to ``accept()``,
which runs the shared chain of checks (own messages, persist + dedupe, schedule the bot); and
turns our ``StoredMessage`` into a channel API call in ``deliver()``, which the outbox calls and
retries. Adding a channel means one module with a subclass and a settings entry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import structlog
from aiohttp import web

from bot.core.errors import BadMessage
from bot.core.models import Conversation
from bot.core.types import InboundMessage, StoredMessage
from bot.service import ConversationService

log = structlog.get_logger(__name__)


class AcceptStatus(StrEnum):
    ACCEPTED = "accepted"  # stored; the bot or the agent will answer
    DUPLICATE = "duplicate"  # seen before (a channel retry): stored once, nothing else to do
    IGNORED = "ignored"  # not for us, e.g. the bot's own message echoed back
    REJECTED = "rejected"  # unusable input; ``message`` says why, for the customer


@dataclass(frozen=True)
class AcceptResult:
    status: AcceptStatus
    message: str | None = None
    conversation_id: str | None = None
    seq: int | None = None


Next = Callable[[InboundMessage], Awaitable[AcceptResult]]
InboundCheck = Callable[[InboundMessage, Next], Awaitable[AcceptResult]]


async def ignore_own_messages(message: InboundMessage, call_next: Next) -> AcceptResult:
    """Connectors mark echoes of what the bot itself sent with metadata ``from_self``."""
    if message.metadata.get("from_self"):
        return AcceptResult(AcceptStatus.IGNORED)
    return await call_next(message)


async def ignore_empty(message: InboundMessage, call_next: Next) -> AcceptResult:
    if not message.text.strip() and not message.payload:
        return AcceptResult(AcceptStatus.IGNORED)
    return await call_next(message)


class ChannelConnector(ABC):
    """Base class of the Telegram, Slack, … connectors (web chat has its own socket path)."""

    channel: ClassVar[str]
    checks: ClassVar[Sequence[InboundCheck]] = (ignore_own_messages, ignore_empty)

    def __init__(self, app: web.Application) -> None:
        # Routes are added before the app starts; the service exists only once it has.
        self.app = app

    @property
    def service(self) -> ConversationService:
        from bot.appkeys import SERVICE

        return self.app[SERVICE]

    @abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Register the channel's webhook routes (if any) on the gateway app."""

    async def start(self) -> None:
        """Called once the gateway is up: register webhooks, start polling, check the token."""
        return None

    async def stop(self) -> None:
        """Called on shutdown."""
        return None

    @abstractmethod
    async def deliver(self, conversation: Conversation, message: StoredMessage) -> None:
        """Send one stored outbound message; raise DeliveryError when the channel refuses."""

    async def accept(self, message: InboundMessage) -> AcceptResult:
        """Run the shared checks, then persist (deduped on the channel's message id) and let
        the conversation service answer in the background. Return quickly: webhooks wait."""

        async def persist(msg: InboundMessage) -> AcceptResult:
            try:
                accepted = await self.service.receive(msg)
            except BadMessage as exc:
                return AcceptResult(AcceptStatus.REJECTED, str(exc))
            if accepted.duplicate:
                log.info(
                    "duplicate inbound dropped",
                    channel=msg.channel,
                    channel_message_id=msg.channel_message_id,
                )
                return AcceptResult(
                    AcceptStatus.DUPLICATE,
                    conversation_id=accepted.conversation.id,
                    seq=accepted.message.seq,
                )
            if accepted.needs_processing:
                self.service.process_soon(accepted.conversation.id)
            return AcceptResult(
                AcceptStatus.ACCEPTED,
                conversation_id=accepted.conversation.id,
                seq=accepted.message.seq,
            )

        handler: Next = persist
        for check in reversed(self.checks):
            handler = _bind(check, handler)
        return await handler(message)


def _bind(check: InboundCheck, call_next: Next) -> Next:
    async def run(message: InboundMessage) -> AcceptResult:
        return await check(message, call_next)

    return run
