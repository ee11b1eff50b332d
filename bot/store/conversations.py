"""Conversations: opening them, reading them and compare-and-set updates on ``version``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.core.clock import utcnow
from bot.core.errors import NotFound, StaleVersion
from bot.core.models import Conversation
from bot.core.state import ConversationState
from bot.core.types import Direction
from bot.store.customers import customer_by_id
from bot.store.engine import Conn, StoreEngine, first
from bot.store.rows import to_conversation
from bot.store.schema import conversations, customers, messages, new_id
from bot.store.statements import SELECT_CONVERSATION

__all__ = ["ConversationsMixin", "of_conversation", "require_conversation", "state_values"]

# What update_conversation may change.
_CONVERSATION_CHANGES = frozenset(
    {
        "state",
        "team",
        "priority",
        "assigned_agent_id",
        "awaiting_csat",
        "awaiting_survey",
        "bot_cursor",
        "handoff_due",
        "language",
        "required_skills",
    }
)


def state_values(states: Iterable[ConversationState]) -> list[str]:
    """The column values of ``states`` (ValueError for anything that is not a state)."""
    return [ConversationState(s).value for s in states]


def of_conversation(table: sa.Table, conversation_id: str) -> sa.Select[Any]:
    """The rows of ``table`` that belong to a conversation, oldest (lowest id) first."""
    return sa.select(table).where(table.c.conversation_id == conversation_id).order_by(table.c.id)


async def require_conversation(conn: Conn, conversation_id: str) -> None:
    """NotFound unless the conversation exists."""
    found = await conn.execute(
        sa.select(conversations.c.id).where(conversations.c.id == conversation_id)
    )
    if found.first() is None:
        raise NotFound(f"no conversation {conversation_id}")


async def _newest_conversation(
    conn: Conn, customer_id: str, channel: str, channel_user_id: str
) -> Conversation | None:
    query = (
        sa.select(conversations)
        .where(
            conversations.c.channel == channel,
            conversations.c.channel_user_id == channel_user_id,
            conversations.c.customer_id == customer_id,
        )
        .order_by(conversations.c.created_at.desc(), conversations.c.id.desc())
        .limit(1)
    )
    return await first(conn, query, to_conversation)


async def _insert_conversation(
    conn: Conn,
    customer_id: str,
    channel: str,
    channel_user_id: str,
    conversation_id: str | None = None,
    verified: tuple[str, str] | None = None,
) -> Conversation:
    now = utcnow()
    verified_id, verified_by = verified if verified else (None, None)
    new = Conversation(
        id=conversation_id or new_id(),
        customer_id=customer_id,
        channel=channel,
        channel_user_id=channel_user_id,
        state=ConversationState.BOT,
        version=1,
        team=None,
        priority="normal",
        assigned_agent_id=None,
        awaiting_csat=False,
        bot_cursor=0,
        created_at=now,
        updated_at=now,
        verified_id=verified_id,
        verified_by=verified_by,
        verified_at=now if verified else None,
    )
    values = dataclasses.asdict(new) | {"state": new.state.value, "last_seq": 0}
    await conn.execute(conversations.insert().values(**values))
    return new


class ConversationsMixin(StoreEngine):
    """The store's conversations, one customer's on one channel identity each."""

    async def open_conversation(
        self, customer_id: str, channel: str, channel_user_id: str
    ) -> Conversation:
        """The customer's newest conversation on this identity (any state), else a new one.

        A new conversation starts in state BOT. Concurrent calls for the same customer all get
        the same conversation.
        """
        async with self._tx() as conn:
            found = await _newest_conversation(conn, customer_id, channel, channel_user_id)
        if found is not None:
            return found
        async with self._tx(write=True) as conn:
            # Lock the customer row so concurrent first messages queue up here (PostgreSQL;
            # SQLite's BEGIN IMMEDIATE already lets one writer in at a time), then look again.
            locked = await conn.execute(
                sa.select(customers.c.id).where(customers.c.id == customer_id).with_for_update()
            )
            if locked.first() is None:
                raise NotFound(f"no customer {customer_id}")
            found = await _newest_conversation(conn, customer_id, channel, channel_user_id)
            if found is not None:
                return found
            return await _insert_conversation(conn, customer_id, channel, channel_user_id)

    async def create_conversation(
        self,
        customer_id: str,
        channel: str,
        channel_user_id: str,
        conversation_id: str | None = None,
        verified: tuple[str, str] | None = None,
    ) -> Conversation:
        """A new conversation in state BOT, version 1. NotFound if the customer does not exist.

        ``conversation_id``: the id handed out before the conversation was stored (web chat
        tokens); when a conversation with it exists already, that one is returned.
        ``verified``: (the shop's id, how) the conversation is verified as from its start."""
        try:
            async with self._tx(write=True) as conn:
                if await customer_by_id(conn, customer_id) is None:
                    raise NotFound(f"no customer {customer_id}")
                return await _insert_conversation(
                    conn, customer_id, channel, channel_user_id, conversation_id, verified
                )
        except IntegrityError:
            existing = await self.conversation(conversation_id) if conversation_id else None
            if existing is None:
                raise
            return existing

    async def verify_conversation(
        self, conversation_id: str, verified_id: str, verified_by: str
    ) -> None:
        """Record whom this conversation is verified as (not a change of its state: the
        version stays). NotFound if there is no such conversation."""
        async with self._tx(write=True) as conn:
            result = await conn.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id)
                .values(verified_id=verified_id, verified_by=verified_by, verified_at=utcnow())
            )
            if not result.rowcount:
                raise NotFound(f"no conversation {conversation_id}")

    async def conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation with this id, or None."""
        return await self._one(SELECT_CONVERSATION, to_conversation, {"b_id": conversation_id})

    async def conversations_for_customer(self, customer_id: str) -> list[Conversation]:
        """All of a customer's conversations, on every channel, newest first."""
        query = (
            sa.select(conversations)
            .where(conversations.c.customer_id == customer_id)
            .order_by(conversations.c.created_at.desc(), conversations.c.id.desc())
        )
        return await self._all(query, to_conversation)

    async def conversations_in_states(
        self, states: Iterable[ConversationState]
    ) -> list[Conversation]:
        """All conversations in any of ``states``, oldest (by creation) first."""
        wanted = state_values(states)
        if not wanted:
            return []
        query = (
            sa.select(conversations)
            .where(conversations.c.state.in_(wanted))
            .order_by(conversations.c.created_at, conversations.c.id)
        )
        return await self._all(query, to_conversation)

    async def update_conversation(
        self, conversation_id: str, expected_version: int, **changes: Any
    ) -> Conversation:
        """Apply ``changes`` if the conversation is still at ``expected_version``.

        ``changes`` may set state, team, priority, assigned_agent_id, awaiting_csat,
        bot_cursor, handoff_due, language and required_skills (anything else: ValueError).
        The version goes up by one and updated_at is set to now, in one conditional UPDATE.
        Raises StaleVersion when someone else updated the conversation first, NotFound when it
        does not exist (or the assigned agent does not).
        """
        unknown = set(changes) - _CONVERSATION_CHANGES
        if unknown:
            raise ValueError(f"cannot update conversation fields {sorted(unknown)}")
        values = dict(changes)
        if "state" in values:
            values["state"] = ConversationState(values["state"]).value
        if "awaiting_csat" in values:
            values["awaiting_csat"] = bool(values["awaiting_csat"])
        values["version"] = conversations.c.version + 1
        values["updated_at"] = utcnow()
        stmt = (
            conversations.update()
            .where(
                conversations.c.id == conversation_id,
                conversations.c.version == expected_version,
            )
            .values(**values)
            .returning(*conversations.c)
        )
        try:
            async with self._tx(write=True) as conn:
                row = (await conn.execute(stmt)).first()
                if row is not None:
                    return to_conversation(row)
                current = (
                    await conn.execute(
                        sa.select(conversations.c.version).where(
                            conversations.c.id == conversation_id
                        )
                    )
                ).scalar_one_or_none()
        except IntegrityError as exc:
            # The only foreign key among the changes.
            raise NotFound(f"no agent {changes.get('assigned_agent_id')}") from exc
        if current is None:
            raise NotFound(f"no conversation {conversation_id}")
        raise StaleVersion(
            f"conversation {conversation_id} is at version {current}, not {expected_version}"
        )

    async def pending_conversations(self, limit: int = 1000) -> list[str]:
        """Conversations with the bot that have customer messages not handled yet (oldest
        first): what a restarted gateway, or one whose Rasa was down, must still answer."""
        query = (
            sa.select(conversations.c.id)
            .where(
                conversations.c.state == ConversationState.BOT.value,
                sa.exists().where(
                    messages.c.conversation_id == conversations.c.id,
                    messages.c.direction == Direction.INBOUND.value,
                    messages.c.seq > conversations.c.bot_cursor,
                ),
            )
            .order_by(conversations.c.updated_at)
            .limit(limit)
        )
        return await self._sweep(lambda conn: [row[0] for row in conn.execute(query)])

    async def conversations_with_handoff_due(self, limit: int = 1000) -> list[Conversation]:
        """Conversations still with the bot whose last turn decided a handoff that did not
        start (the gateway stopped in between), oldest change first."""
        query = (
            sa.select(conversations)
            .where(
                conversations.c.state == ConversationState.BOT.value,
                conversations.c.handoff_due.is_not(None),
            )
            .order_by(conversations.c.updated_at)
            .limit(limit)
        )
        return await self._sweep(lambda conn: [to_conversation(row) for row in conn.execute(query)])
