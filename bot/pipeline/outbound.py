"""Outbound: store a message, fan it out to sockets and consoles, wake the outbox.

Channels with a sender (Telegram, Slack) get their messages through the outbox, queued in the
same transaction that stores them; web chat needs none, its sockets get the broker event and
resync by seq after a reconnect. Fan-out after a commit is best effort: what is stored stays
stored, and sockets that missed an event resync when the broker is back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog

from bot.broker import Broker, BrokerError
from bot.core.frames import (
    CONSOLE_TOPIC,
    console_conversation_frame,
    console_message_frame,
    console_typing_frame,
    conversation_topic,
    message_frame,
    state_frame,
    typing_frame,
)
from bot.core.models import Conversation, OutboundDraft
from bot.core.ports import ChannelSender, TypingSender
from bot.core.state import HUMAN_STATES
from bot.core.types import Attachment, Button, SenderKind, StoredMessage
from bot.store import Store

log = structlog.get_logger(__name__)


class Outbound:
    """Everything that leaves the gateway goes through here."""

    def __init__(
        self,
        store: Store,
        broker: Broker,
        senders: Mapping[str, ChannelSender],
        wake_outbox: Callable[[], None],
    ) -> None:
        self.store, self.broker = store, broker
        self.senders, self.wake_outbox = senders, wake_outbox

    def outbox_channel(self, conversation: Conversation) -> str | None:
        """The channel to queue outbound messages for: one with a sender; web chat has none."""
        return conversation.channel if conversation.channel in self.senders else None

    async def send(
        self,
        conversation: Conversation,
        sender: SenderKind,
        text: str,
        *,
        buttons: list[Button] | None = None,
        sender_name: str | None = None,
        payload: str | None = None,
        attachment: Attachment | None = None,
    ) -> StoredMessage:
        draft = OutboundDraft(sender, text, sender_name, tuple(buttons or ()), payload, attachment)
        _, (message,) = await self.store.append_outbound(
            conversation.id,
            [draft],
            outbox_channel=self.outbox_channel(conversation),
        )
        await self.announce(conversation, [message])
        return message

    async def system_message(
        self, conversation: Conversation, text: str, payload: str | None = None
    ) -> StoredMessage:
        return await self.send(conversation, SenderKind.SYSTEM, text, payload=payload)

    async def announce(self, conversation: Conversation, stored: list[StoredMessage]) -> None:
        """Fan stored outbound messages out to sockets and consoles, and wake the outbox."""
        for message in stored:
            await self.publish_message(conversation, message)
        if stored and conversation.channel in self.senders:
            self.wake_outbox()

    async def publish_message(self, conversation: Conversation, message: StoredMessage) -> None:
        await self.publish(conversation_topic(conversation.id), message_frame(message))
        # The caller's copy of the conversation is current enough: it was read (or written)
        # right before this message was stored. A conversation that was ever with a person
        # (it has a team) stays live in the console after it goes back to the bot: the
        # rating, and whatever the customer asks the bot next, show up there too.
        if conversation.state in HUMAN_STATES or conversation.team is not None:
            await self.publish(CONSOLE_TOPIC, console_message_frame(conversation.id, message))

    async def publish_state(self, conversation: Conversation) -> None:
        await self.publish(conversation_topic(conversation.id), state_frame(conversation.state))
        await self.publish(CONSOLE_TOPIC, console_conversation_frame(conversation))

    async def typing(self, conversation: Conversation, sender: str) -> None:
        """Show the customer that ``sender`` ("bot" or "agent") is writing: on their sockets,
        and through the channel when it can (Telegram's chat action). Never raises."""
        await self.show_typing(conversation, sender)
        await self.channel_typing(conversation)

    async def show_typing(self, conversation: Conversation, sender: str) -> None:
        """The typing dots on the customer's sockets (the widget)."""
        await self.publish(conversation_topic(conversation.id), typing_frame(sender))

    async def channel_typing(self, conversation: Conversation) -> None:
        """The channel's own typing indicator, if it has one (a call to its API). Never
        raises: an indicator is not worth a failure anywhere."""
        channel = self.senders.get(conversation.channel)
        if isinstance(channel, TypingSender):
            try:
                await channel.typing(conversation)
            except Exception as exc:
                log.info("typing indicator not sent", channel=conversation.channel, error=str(exc))

    async def customer_typing(self, conversation: Conversation) -> None:
        """Tell the consoles the customer is typing, while people have the conversation."""
        if conversation.state in HUMAN_STATES:
            await self.publish(CONSOLE_TOPIC, console_typing_frame(conversation.id))

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Best effort: no error for the caller to retry into a duplicate."""
        try:
            await self.broker.publish(topic, event)
        except BrokerError as exc:
            log.warning("publish failed; consumers resync", topic=topic, error=str(exc))
