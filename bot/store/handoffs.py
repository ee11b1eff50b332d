"""Handoffs (requests for a human) and the rows of the console's queue view."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.core.clock import utcnow
from bot.core.errors import NotFound
from bot.core.models import Handoff, QueueRow
from bot.core.state import ConversationState
from bot.core.types import SenderKind
from bot.store.conversations import of_conversation, require_conversation, state_values
from bot.store.engine import StoreEngine, first, insert_record
from bot.store.rows import to_conversation, to_handoff
from bot.store.schema import agents, aware, conversations, customers, handoffs, messages

__all__ = ["HandoffsMixin"]

# What update_handoff may change.
_HANDOFF_CHANGES = frozenset(
    {
        "assigned_at",
        "first_agent_reply_at",
        "resolved_at",
        "agent_id",
        "packet",
        "team",
        "priority",
        "disposition",
        "bot_should_have_handled",
    }
)


def _queue_query(wanted: list[str]) -> sa.Select[Any]:
    """The queue view's one query over the conversations in the ``wanted`` states."""
    open_handoff = (
        sa.select(sa.func.max(handoffs.c.id))
        .where(
            handoffs.c.conversation_id == conversations.c.id,
            handoffs.c.resolved_at.is_(None),
        )
        .correlate(conversations)
        .scalar_subquery()
    )
    last_text = (
        sa.select(messages.c.text)
        .where(
            messages.c.conversation_id == conversations.c.id,
            messages.c.sender_kind == SenderKind.CUSTOMER.value,
        )
        .order_by(messages.c.seq.desc())
        .limit(1)
        .correlate(conversations)
        .scalar_subquery()
    )
    return (
        sa.select(
            conversations,
            customers.c.display_name.label("customer_name"),
            handoffs.c.requested_at.label("handoff_requested_at"),
            handoffs.c.packet["reason_text"].as_string().label("reason_text"),
            agents.c.display_name.label("agent_name"),
            last_text.label("last_customer_text"),
        )
        .outerjoin(customers, customers.c.id == conversations.c.customer_id)
        .outerjoin(handoffs, handoffs.c.id == open_handoff)
        .outerjoin(agents, agents.c.id == conversations.c.assigned_agent_id)
        .where(conversations.c.state.in_(wanted))
        .order_by(conversations.c.created_at, conversations.c.id)
    )


def _queue_row(row: sa.Row[Any]) -> QueueRow:
    return QueueRow(
        conversation=to_conversation(row),
        customer_name=row.customer_name,
        handoff_requested_at=row.handoff_requested_at,
        reason_text=row.reason_text,
        agent_name=row.agent_name,
        last_customer_text=row.last_customer_text,
    )


class HandoffsMixin(StoreEngine):
    """The store's handoffs: one per request for a human, resolved when the person is done."""

    async def create_handoff(
        self,
        conversation_id: str,
        packet: dict[str, Any],
        reason: str,
        team: str,
        priority: str,
        intent: str | None = None,
    ) -> Handoff:
        """Record a request for a human, requested now. NotFound if no such conversation."""
        new = Handoff(
            id=0,  # the database gives the id (insert_record)
            conversation_id=conversation_id,
            packet=dict(packet),
            reason=reason,
            team=team,
            priority=priority,
            requested_at=utcnow(),
            assigned_at=None,
            first_agent_reply_at=None,
            resolved_at=None,
            agent_id=None,
            intent=intent,
        )
        async with self._tx(write=True) as conn:
            await require_conversation(conn, conversation_id)
            return await insert_record(conn, handoffs, new)

    async def current_handoff(self, conversation_id: str) -> Handoff | None:
        """The conversation's newest unresolved handoff, or None."""
        query = (
            sa.select(handoffs)
            .where(
                handoffs.c.conversation_id == conversation_id,
                handoffs.c.resolved_at.is_(None),
            )
            .order_by(handoffs.c.id.desc())
            .limit(1)
        )
        return await self._one(query, to_handoff)

    async def queue_rows(self, states: Iterable[ConversationState]) -> list[QueueRow]:
        """What the console's queue view shows of every conversation in ``states``, in one
        query: the conversation, its customer's name, its open handoff's request time and
        reason, the assigned agent's name and the customer's last message. Oldest first."""
        wanted = state_values(states)
        if not wanted:
            return []
        return await self._all(_queue_query(wanted), _queue_row)

    async def handoffs_for_conversation(self, conversation_id: str) -> list[Handoff]:
        """All handoffs of a conversation, oldest first."""
        return await self._all(of_conversation(handoffs, conversation_id), to_handoff)

    async def update_handoff(self, handoff_id: int, **changes: Any) -> Handoff:
        """Set some of assigned_at, first_agent_reply_at, resolved_at, agent_id, packet, team,
        priority (anything else: ValueError). NotFound for an unknown handoff or agent.
        """
        unknown = set(changes) - _HANDOFF_CHANGES
        if unknown:
            raise ValueError(f"cannot update handoff fields {sorted(unknown)}")
        for key in ("assigned_at", "first_agent_reply_at", "resolved_at"):
            if changes.get(key) is not None:
                changes[key] = aware(changes[key], key)
        if not changes:
            found = await self._one(
                sa.select(handoffs).where(handoffs.c.id == handoff_id), to_handoff
            )
        else:
            try:
                async with self._tx(write=True) as conn:
                    found = await first(
                        conn,
                        handoffs.update()
                        .where(handoffs.c.id == handoff_id)
                        .values(**changes)
                        .returning(*handoffs.c),
                        to_handoff,
                    )
            except IntegrityError as exc:
                raise NotFound(f"no agent {changes.get('agent_id')}") from exc
        if found is None:
            raise NotFound(f"no handoff {handoff_id}")
        return found

    async def last_agent_of_customer(self, customer_id: str) -> int | None:
        """The agent who resolved the customer's latest handoff, if any."""
        query = (
            sa.select(handoffs.c.agent_id)
            .join(conversations, conversations.c.id == handoffs.c.conversation_id)
            .where(
                conversations.c.customer_id == customer_id,
                handoffs.c.resolved_at.is_not(None),
                handoffs.c.agent_id.is_not(None),
            )
            .order_by(handoffs.c.resolved_at.desc())
            .limit(1)
        )
        async with self._tx() as conn:
            return (await conn.execute(query)).scalar_one_or_none()

    async def recent_handoffs(self, limit: int = 50) -> list[Handoff]:
        """The newest handoffs across all conversations, newest first."""
        return await self._all(
            sa.select(handoffs).order_by(handoffs.c.id.desc()).limit(limit), to_handoff
        )
