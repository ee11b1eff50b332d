"""Messages: appending them as each conversation's next seq, and the reads of the bot's turn.

A message's seq is claimed by bumping its conversation's ``last_seq`` inside the appending
transaction: on PostgreSQL that UPDATE row-locks the conversation until commit, so concurrent
appenders queue up (on SQLite, BEGIN IMMEDIATE already did), and a rollback gives the seq back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bot.core.clock import utcnow
from bot.core.errors import DuplicateMessage, NotFound, StaleVersion
from bot.core.models import Conversation, MessageNlu, OutboundDraft, PendingTurn
from bot.core.types import Attachment, Button, Direction, SenderKind, StoredMessage
from bot.store.engine import Conn, StoreEngine, first
from bot.store.rows import to_conversation, to_message
from bot.store.schema import messages
from bot.store.statements import (
    BUMP_SEQ,
    BUMP_SEQ_RETURNING_ALL,
    CAS_TOUCH,
    CAS_TURN,
    FIND_INBOUND,
    INSERT_MESSAGE,
    INSERT_OUTBOX,
    PENDING_CONVERSATION,
    PENDING_MESSAGES,
    RECENT_CUSTOMER_TURNS,
    SET_NLU,
)

__all__ = ["MessagesMixin"]


@dataclass(frozen=True)
class _Claimed:
    conversation: Conversation
    last_seq: int


async def _claim_seq(conn: Conn, conversation_id: str) -> _Claimed:
    """Claim the conversation's next seq by bumping its counter (see the module docstring),
    and read the conversation as it is now."""
    row = (await conn.execute(BUMP_SEQ_RETURNING_ALL, {"b_id": conversation_id})).first()
    if row is None:
        raise NotFound(f"no conversation {conversation_id}")
    return _Claimed(to_conversation(row), row.last_seq)


async def _find_inbound(
    conn: Conn, conversation_id: str, channel_message_id: str
) -> StoredMessage | None:
    params = {"b_id": conversation_id, "b_channel_message_id": channel_message_id}
    return await first(conn, FIND_INBOUND, to_message, params)


async def _insert_message(
    conn: Conn,
    conversation_id: str,
    draft: OutboundDraft,
    *,
    direction: Direction,
    intent: str | None = None,
    confidence: float | None = None,
    channel_message_id: str | None = None,
    seq: int | None = None,
) -> StoredMessage:
    """Insert one message; ``seq`` is given when the caller already claimed it."""
    direction = Direction(direction)
    sender_kind = SenderKind(draft.sender_kind)
    if seq is None:
        # See _claim_seq; only the number is needed here.
        seq = (await conn.execute(BUMP_SEQ, {"b_id": conversation_id})).scalar_one_or_none()
        if seq is None:
            raise NotFound(f"no conversation {conversation_id}")
    if direction is Direction.INBOUND and channel_message_id is not None:
        # Checked under the lock, so two deliveries of one message can't both pass.
        existing = await _find_inbound(conn, conversation_id, channel_message_id)
        if existing is not None:
            raise DuplicateMessage(existing)
    created_at = utcnow()
    button_list = [Button(b.title, b.payload) for b in draft.buttons]
    message_id = (
        await conn.execute(
            INSERT_MESSAGE,
            {
                "conversation_id": conversation_id,
                "seq": seq,
                "direction": direction.value,
                "sender_kind": sender_kind.value,
                "sender_name": draft.sender_name,
                "text": draft.text,
                "buttons": [b.to_dict() for b in button_list],
                "payload": draft.payload,
                "intent": intent,
                "confidence": confidence,
                "channel_message_id": channel_message_id,
                "created_at": created_at,
                "attachment": draft.attachment.stored() if draft.attachment else None,
            },
        )
    ).scalar_one()
    return StoredMessage(
        id=message_id,
        conversation_id=conversation_id,
        seq=seq,
        direction=direction,
        sender_kind=sender_kind,
        text=draft.text,
        created_at=created_at,
        sender_name=draft.sender_name,
        buttons=button_list,
        payload=draft.payload,
        intent=intent,
        confidence=confidence,
        channel_message_id=channel_message_id,
        attachment=draft.attachment,
    )


def _nlu_params(nlu: MessageNlu) -> dict[str, Any]:
    return {"b_id": nlu.message_id, "b_intent": nlu.intent, "b_confidence": nlu.confidence}


async def _recent_customer_turns(
    conn: Conn, conversation_id: str, *, upto_seq: int, limit: int
) -> list[StoredMessage]:
    params = {"b_id": conversation_id, "b_upto": upto_seq, "b_limit": limit}
    rows = (await conn.execute(RECENT_CUSTOMER_TURNS, params)).all()
    return [to_message(row) for row in reversed(rows)]


class MessagesMixin(StoreEngine):
    """The store's messages, numbered 1, 2, 3, ... per conversation without gaps."""

    async def append_message(
        self,
        conversation_id: str,
        *,
        direction: Direction,
        sender_kind: SenderKind,
        text: str,
        sender_name: str | None = None,
        buttons: Sequence[Button] = (),
        payload: str | None = None,
        intent: str | None = None,
        confidence: float | None = None,
        channel_message_id: str | None = None,
    ) -> StoredMessage:
        """Store a message as the conversation's next seq (1, 2, 3, ... without gaps).

        An inbound message whose ``channel_message_id`` is already stored as an inbound
        message of this conversation raises DuplicateMessage (with the stored copy) and stores
        nothing. NotFound if the conversation does not exist.
        """
        async with self._tx(write=True) as conn:
            return await _insert_message(
                conn,
                conversation_id,
                OutboundDraft(sender_kind, text, sender_name, tuple(buttons), payload),
                direction=direction,
                intent=intent,
                confidence=confidence,
                channel_message_id=channel_message_id,
            )

    async def append_inbound(
        self,
        conversation_id: str,
        *,
        text: str,
        sender_name: str | None = None,
        payload: str | None = None,
        channel_message_id: str | None = None,
        attachment: Attachment | None = None,
    ) -> tuple[Conversation, StoredMessage]:
        """Store a customer's message like :meth:`append_message`, and return the conversation
        as it is now (read in the same transaction, so no second read is needed)."""
        async with self._tx(write=True) as conn:
            claimed = await _claim_seq(conn, conversation_id)
            message = await _insert_message(
                conn,
                conversation_id,
                OutboundDraft(
                    SenderKind.CUSTOMER, text, sender_name, payload=payload, attachment=attachment
                ),
                direction=Direction.INBOUND,
                channel_message_id=channel_message_id,
                seq=claimed.last_seq,
            )
            return claimed.conversation, message

    async def append_outbound(
        self,
        conversation_id: str,
        drafts: Sequence[OutboundDraft],
        *,
        outbox_channel: str | None = None,
        expected_version: int | None = None,
        bot_cursor: int | None = None,
        nlu: MessageNlu | None = None,
        handoff_due: dict[str, Any] | None = None,
    ) -> tuple[Conversation | None, list[StoredMessage]]:
        """Store outbound messages, and queue them on ``outbox_channel``, in ONE transaction.

        With ``expected_version`` it is also a compare-and-set: the conversation's version goes
        up by one (and ``bot_cursor`` moves forward) only if it is still at that version, else
        StaleVersion and nothing is stored. So a crash can never leave a bot turn half done:
        either the replies are stored, queued and the customer's message marked handled, or
        none of it. ``nlu`` records what NLU made of the customer's message, and
        ``handoff_due`` (needs ``bot_cursor``) marks a handoff the turn decided, in the same
        transaction. Returns the updated conversation (None without ``expected_version``) and
        the stored messages.
        """
        if handoff_due is not None and (expected_version is None or bot_cursor is None):
            raise ValueError("handoff_due needs expected_version and bot_cursor")
        async with self._tx(write=True) as conn:
            updated: Conversation | None = None
            if expected_version is not None:
                params = {"b_id": conversation_id, "b_version": expected_version, "b_now": utcnow()}
                if bot_cursor is not None:
                    params["b_cursor"] = bot_cursor
                    params["b_due"] = handoff_due
                cas = CAS_TOUCH if bot_cursor is None else CAS_TURN
                row = (await conn.execute(cas, params)).first()
                if row is None:
                    raise StaleVersion(
                        f"conversation {conversation_id} moved past version {expected_version}"
                    )
                updated = to_conversation(row)
            if nlu is not None:
                await conn.execute(SET_NLU, _nlu_params(nlu))
            stored = []
            for draft in drafts:
                message = await _insert_message(
                    conn, conversation_id, draft, direction=Direction.OUTBOUND
                )
                if outbox_channel is not None:
                    await conn.execute(
                        INSERT_OUTBOX,
                        {
                            "message_id": message.id,
                            "conversation_id": conversation_id,
                            "channel": outbox_channel,
                            "attempts": 0,
                            "next_attempt_at": message.created_at,
                        },
                    )
                stored.append(message)
            return updated, stored

    async def pending_turn(
        self, conversation_id: str, *, recent_turns: int = 0
    ) -> PendingTurn | None:
        """What the bot must answer next, in one read: the conversation, its customer's name,
        the customer messages after the bot's cursor (oldest first) and, with
        ``recent_turns``, what :meth:`recent_customer_turns` gives up to the first of them.
        None if there is no such conversation."""
        async with self._tx() as conn:
            row = (await conn.execute(PENDING_CONVERSATION, {"b_id": conversation_id})).first()
            if row is None:
                return None
            conversation = to_conversation(row)
            pending = [
                to_message(m)
                for m in await conn.execute(
                    PENDING_MESSAGES, {"b_id": conversation_id, "b_after": conversation.bot_cursor}
                )
            ]
            recent: list[StoredMessage] = []
            if pending and recent_turns > 0:
                recent = await _recent_customer_turns(
                    conn, conversation_id, upto_seq=pending[0].seq, limit=recent_turns
                )
            return PendingTurn(
                conversation,
                row.customer_name,
                pending,
                recent,
                row.customer_verified_id,
                row.customer_verified_by,
                row.identity_linked_by,
            )

    async def recent_customer_turns(
        self, conversation_id: str, *, upto_seq: int, limit: int
    ) -> list[StoredMessage]:
        """The newest ``limit`` customer messages with seq <= ``upto_seq`` said since the last
        rating prompt (a system message with payload ``csat_request``), oldest first: the
        turns since the bot last took the conversation over from a person."""
        async with self._tx() as conn:
            return await _recent_customer_turns(
                conn, conversation_id, upto_seq=upto_seq, limit=limit
            )

    async def find_inbound(
        self, conversation_id: str, channel_message_id: str
    ) -> StoredMessage | None:
        """The inbound message of this conversation with this channel message id, or None."""
        async with self._tx() as conn:
            return await _find_inbound(conn, conversation_id, channel_message_id)

    async def messages(
        self, conversation_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredMessage]:
        """The conversation's messages with seq > ``after_seq``, ascending, at most ``limit``."""
        query = (
            sa.select(messages)
            .where(messages.c.conversation_id == conversation_id, messages.c.seq > after_seq)
            .order_by(messages.c.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        return await self._all(query, to_message)

    async def last_message(
        self, conversation_id: str, sender_kind: SenderKind
    ) -> StoredMessage | None:
        """The conversation's newest message from this kind of sender, or None."""
        query = (
            sa.select(messages)
            .where(
                messages.c.conversation_id == conversation_id,
                messages.c.sender_kind == SenderKind(sender_kind).value,
            )
            .order_by(messages.c.seq.desc())
            .limit(1)
        )
        return await self._one(query, to_message)

    async def offered_payloads(self, conversation_id: str, within: int = 20) -> set[str]:
        """The payloads of the latest buttons the bot (or the gateway) sent: those on the newest
        of the conversation's last ``within`` outbound messages that has any."""
        query = (
            sa.select(messages.c.buttons)
            .where(
                messages.c.conversation_id == conversation_id,
                messages.c.direction == Direction.OUTBOUND.value,
            )
            .order_by(messages.c.seq.desc())
            .limit(within)
        )
        for buttons in await self._all(query, lambda row: row.buttons):
            if buttons:
                return {str(b.get("payload")) for b in buttons if isinstance(b, dict)}
        return set()

    async def message(self, message_id: int) -> StoredMessage | None:
        """The message with this id (of any conversation), or None."""
        return await self._one(sa.select(messages).where(messages.c.id == message_id), to_message)

    async def set_message_nlu(
        self, message_id: int, intent: str | None, confidence: float | None
    ) -> None:
        """Record what NLU made of a stored message. NotFound if there is no such message."""
        nlu = _nlu_params(MessageNlu(message_id, intent, confidence))
        await self._update_one(SET_NLU, nlu, f"no message {message_id}")
