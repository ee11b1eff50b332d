"""Intake: the one inbound path of every channel (web chat, Telegram, Slack, ...).

A channel adapter turns its update into an ``InboundMessage`` and calls :meth:`Intake.accept`,
which runs a chain of small checks (the bot's own echoes, empty messages), validates the input,
stores the message deduped on the channel's message id, publishes it, and schedules the bot.
Persist, then acknowledge: ``accept`` returns once the message is in SQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import structlog

from bot.broker import Subscription
from bot.core.errors import BadMessage, DuplicateMessage, NotFound
from bot.core.frames import (
    Frame,
    conversation_topic,
    message_frame,
    queue_position_frame,
    state_frame,
)
from bot.core.models import Conversation
from bot.core.ports import HandoffDesk
from bot.core.redact import redact
from bot.core.state import HUMAN_STATES, ConversationState
from bot.core.types import (
    ATTACHMENT_PAYLOAD,
    EDITED_PAYLOAD,
    SURVEY_PAYLOAD,
    UNSUPPORTED_PAYLOAD,
    InboundMessage,
    StoredMessage,
    is_text,
)
from bot.pipeline.context import Component, EngineContext

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
    code: str | None = None  # with REJECTED: a machine-readable reason ("too_long", ...)


@dataclass(frozen=True)
class Accepted:
    conversation: Conversation
    message: StoredMessage
    duplicate: bool

    @property
    def needs_processing(self) -> bool:
        """Whether the bot (or the gateway) still has to act on it; a message for a person
        is delivered to the console when it is stored, and a duplicate was handled before."""
        return not self.duplicate and self.conversation.state not in HUMAN_STATES


Next = Callable[[InboundMessage], Awaitable[AcceptResult]]
InboundCheck = Callable[[InboundMessage, Next], Awaitable[AcceptResult]]


async def ignore_own_messages(message: InboundMessage, call_next: Next) -> AcceptResult:
    """Connectors mark echoes of what the bot itself sent with metadata ``from_self``."""
    if message.metadata.get("from_self"):
        return AcceptResult(AcceptStatus.IGNORED)
    return await call_next(message)


async def ignore_empty(message: InboundMessage, call_next: Next) -> AcceptResult:
    """No words, no button, no picture or file: nothing to store (a photo without a caption is
    a message)."""
    if not message.text.strip() and not message.payload and message.attachment is None:
        return AcceptResult(AcceptStatus.IGNORED)
    return await call_next(message)


# Payloads that only ever get a notice from the gateway (never reach the bot).
NOTICE_PAYLOADS = frozenset({ATTACHMENT_PAYLOAD, EDITED_PAYLOAD, UNSUPPORTED_PAYLOAD})

DEFAULT_CHECKS: Sequence[InboundCheck] = (ignore_own_messages, ignore_empty)


class Intake(Component):
    """The customer side's way in: stores messages and hands them to the scheduler, opens
    sessions, and replays a conversation to a reconnecting socket."""

    def __init__(
        self, ctx: EngineContext, desk: HandoffDesk, schedule: Callable[[str], None]
    ) -> None:
        super().__init__(ctx)
        self.desk, self.schedule = desk, schedule

    async def accept(
        self,
        message: InboundMessage,
        conversation_id: str | None = None,
        checks: Sequence[InboundCheck] = DEFAULT_CHECKS,
    ) -> AcceptResult:
        """Run the checks, then persist (deduped on the channel's message id) and let the bot
        answer in the background. Returns quickly: webhooks and sockets wait for it."""

        async def persist(msg: InboundMessage) -> AcceptResult:
            try:
                accepted = await self.receive(msg, conversation_id)
            except BadMessage as exc:
                return AcceptResult(AcceptStatus.REJECTED, str(exc), code=exc.code)
            except NotFound as exc:
                return AcceptResult(AcceptStatus.REJECTED, str(exc), code="bad_request")
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
                self.schedule(accepted.conversation.id)
            return AcceptResult(
                AcceptStatus.ACCEPTED,
                conversation_id=accepted.conversation.id,
                seq=accepted.message.seq,
            )

        handler: Next = persist
        for check in reversed(checks):
            handler = _bind(check, handler)
        return await handler(message)

    async def receive(
        self, message: InboundMessage, conversation_id: str | None = None
    ) -> Accepted:
        """Validate and store a customer message (deduped on its channel id); no scheduling."""
        text = message.text.strip()
        if not text and not message.payload and message.attachment is None:
            raise BadMessage("bad_request", "The message is empty.")
        self.check_text(message.text)
        if not all(is_text(v) for v in (message.payload, message.display_name)):
            raise BadMessage("bad_request", "The message has characters that are not valid text.")
        privacy = self.settings.privacy
        # Card numbers (and, if configured, e-mails and phone numbers) never reach the record,
        # the consoles or the bot.
        text = redact(text, emails=privacy.mask_emails, phones=privacy.mask_phones)
        if conversation_id is None:
            customer = await self.store.find_or_create_customer(
                message.channel, message.channel_user_id, message.display_name
            )
            conversation_id = (
                await self.store.open_conversation(
                    customer.id, message.channel, message.channel_user_id
                )
            ).id
        payload = await self._allowed_payload(message, conversation_id)
        if message.attachment is not None and not text:
            # Words go to the bot (the picture stays for the agents); a picture alone gets a
            # notice while the bot has the conversation.
            payload = ATTACHMENT_PAYLOAD
        if not text and payload is None:
            raise BadMessage("bad_request", "That button is no longer available; please type.")
        try:
            conversation, stored = await self.store.append_inbound(
                conversation_id,
                text=text or ("" if message.attachment else payload or ""),
                sender_name=message.display_name,
                payload=payload,
                channel_message_id=message.channel_message_id,
                attachment=message.attachment,
            )
        except DuplicateMessage as dup:
            existing = await self.store.conversation(conversation_id)
            if existing is None:
                raise NotFound(f"unknown conversation {conversation_id}") from None
            return Accepted(existing, dup.existing, duplicate=True)
        except NotFound as exc:
            raise NotFound(f"unknown conversation {conversation_id}") from exc
        self.metrics.messages_in.labels(message.channel).inc()
        await self.outbound.publish_message(conversation, stored)
        if conversation.state in HUMAN_STATES:
            await self.desk.customer_waiting(conversation)
        return Accepted(conversation, stored, duplicate=False)

    async def _allowed_payload(self, message: InboundMessage, conversation_id: str) -> str | None:
        """The message's payload if it may pass: one its connector made, a gateway notice, or
        one of the latest buttons the bot offered. Anything else (a hand-made
        ``/refund_status{...}``) is dropped and the message counts as the text it shows."""
        payload = message.payload
        if payload is None or message.trusted_payload or payload in NOTICE_PAYLOADS:
            return payload
        if SURVEY_PAYLOAD.match(payload):
            return payload  # read only by the survey, for its own question (bot_turn.py)
        if payload in await self.store.offered_payloads(conversation_id):
            return payload
        log.info("payload not offered; kept as text", channel=message.channel)
        return None

    async def already_stored(
        self, conversation_id: str, channel_message_id: str
    ) -> StoredMessage | None:
        """The customer message a channel already delivered under this id (a retry), if any."""
        return await self.store.find_inbound(conversation_id, channel_message_id)

    def check_text(self, text: str) -> None:
        """BadMessage when ``text`` could not be a customer message (too long, not text)."""
        limit = self.settings.limits.max_message_chars
        if len(text) > limit:
            raise BadMessage(
                "too_long",
                f"Your message is {len(text)} characters long; the limit is {limit}. "
                "Please shorten it or split it into several messages.",
            )
        if not is_text(text):
            raise BadMessage("bad_request", "The message has characters that are not valid text.")

    async def start_conversation(
        self,
        channel: str,
        channel_user_id: str,
        conversation_id: str,
        verified_id: str | None = None,
    ) -> Conversation:
        """The conversation a web chat token names, stored on its first message: the id was
        handed out with the token, so a visitor who never writes leaves no rows behind.

        ``verified_id``: the shop vouched for this visitor as its customer (a checked signed
        user id); the conversation then joins that customer's history."""
        existing = await self.store.conversation(conversation_id)
        if existing is not None:
            return existing
        customer = await self.store.find_or_create_customer(channel, channel_user_id, None)
        if verified_id is not None:
            customer = await self.store.verify_customer(customer.id, verified_id, "shop")
            self.metrics.verified.labels("shop").inc()
        return await self.store.create_conversation(
            customer.id,
            channel,
            channel_user_id,
            conversation_id,
            verified=(verified_id, "shop") if verified_id is not None else None,
        )

    async def conversation(self, conversation_id: str) -> Conversation | None:
        return await self.store.conversation(conversation_id)

    async def customer_typing(self, conversation_id: str) -> None:
        """The customer is typing (the widget says so at most every few seconds): the agents
        who have the conversation open see it."""
        conversation = await self.store.conversation(conversation_id)
        if conversation is not None:
            await self.outbound.customer_typing(conversation)

    async def subscribe(self, conversation_id: str) -> Subscription:
        """Everything the customer's sockets should see of the conversation, live."""
        return await self.broker.subscribe(conversation_topic(conversation_id))

    async def replay(self, conversation_id: str, after_seq: int) -> list[Frame]:
        """What a socket that saw up to ``after_seq`` missed: messages, state, queue place."""
        frames = [
            message_frame(m)
            for m in await self.store.messages(conversation_id, after_seq=after_seq)
        ]
        conversation = await self.store.conversation(conversation_id)
        if conversation is None:
            return frames
        frames.append(state_frame(conversation.state))
        if conversation.state is ConversationState.QUEUED:
            frames.append(queue_position_frame(*await self.desk.queue_position(conversation.id)))
        return frames


def _bind(check: InboundCheck, call_next: Next) -> Next:
    async def run(message: InboundMessage) -> AcceptResult:
        return await check(message, call_next)

    return run
