"""The seams between the engine and what plugs into it, as protocols.

``ChannelSender`` is the outbound side of a channel (Telegram, Slack): the outbox hands it one
stored message at a time and retries on ``DeliveryError``. ``HandoffDesk`` is what the pipeline
needs of the human side (``handoff/``): start a handoff, and say where a waiting customer
stands. The composition root (``bot/app.py``) wires the implementations in.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from bot.core.models import Agent, Conversation
from bot.core.policy import HandoffDecision
from bot.core.types import StoredMessage


class ChannelSender(Protocol):
    """Delivers one stored outbound message to the customer; raises ``DeliveryError``."""

    @property
    def channel(self) -> str: ...

    async def deliver(self, conversation: Conversation, message: StoredMessage) -> None: ...


@runtime_checkable
class TypingSender(Protocol):
    """A channel sender that can also show the customer that someone is typing (Telegram's
    chat action). Best effort: it may raise, and nobody retries it."""

    async def typing(self, conversation: Conversation) -> None: ...


class HandoffDesk(Protocol):
    """The human side as the conversation pipeline sees it."""

    async def start(
        self,
        conversation: Conversation,
        decision: HandoffDecision,
        tracker: dict[str, Any] | None,
        source_agent: Agent | None = None,
    ) -> Conversation:
        """Pause the bot, build and store the packet, queue the conversation, tell everyone."""
        ...

    async def queue_position(self, conversation_id: str) -> tuple[int, float | None, str]:
        """1-based position in the team's queue, the estimated wait in seconds (None when it
        cannot be known) and the sentence the customer reads about both."""
        ...

    async def customer_waiting(self, conversation: Conversation) -> None:
        """A customer message arrived for a person (queued or assigned): service-level
        clocks may start."""
        ...

    async def sweep(self) -> None:
        """The periodic duties of the human side: follow-ups join the queue when their team
        opens, push teams hand out what waits, SLA clocks are checked."""
        ...


class FileStorage(Protocol):
    """Where the bytes of uploaded pictures and files live (bot/filestore.py): a local
    directory by default. Keys are the files' random ids."""

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes:
        """The stored bytes; FileNotFoundError when there are none under ``key``."""
        ...
