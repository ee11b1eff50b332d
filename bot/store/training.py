"""What the designers' loop reads (handoff/training.py): customer messages the bot did not
handle, and the conversations agents said the bot should have handled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bot.core.types import Direction
from bot.store.engine import StoreEngine
from bot.store.schema import conversations, customers, handoffs, messages

__all__ = ["TrainingMixin"]

# A skeleton keeps at most this many of the customer's messages before the handoff.
SKELETON_TURNS = 10


class TrainingMixin(StoreEngine):
    async def training_candidates(
        self, start: datetime, end: datetime, low_confidence: float, before_handoff: int
    ) -> list[dict[str, Any]]:
        """Typed customer messages of ``[start, end)`` that hit the fallback, that NLU read
        with less than ``low_confidence``, or that were among the last ``before_handoff``
        before a handoff; each once, with the latest wrap-up of its conversation."""

        def read(conn: sa.Connection) -> list[dict[str, Any]]:
            return _candidates(conn, start, end, low_confidence, before_handoff)

        return await self._sweep(read)

    async def should_have_handled(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Handoffs of ``[start, end)`` the agent marked "the bot should have handled this",
        each with the customer's typed messages up to the handoff (the newest few)."""

        def read(conn: sa.Connection) -> list[dict[str, Any]]:
            return _should_have(conn, start, end)

        return await self._sweep(read)


def _typed(start: datetime, end: datetime) -> list[Any]:
    """Customer messages of the window that the customer typed (not a button, not empty)."""
    return [
        messages.c.direction == Direction.INBOUND.value,
        messages.c.created_at >= start,
        messages.c.created_at < end,
        messages.c.payload.is_(None),
        messages.c.text != "",
    ]


def _candidates(
    conn: sa.Connection, start: datetime, end: datetime, low: float, before: int
) -> list[dict[str, Any]]:
    found: dict[tuple[str, int], dict[str, Any]] = {}
    unsure = sa.or_(messages.c.intent == "nlu_fallback", messages.c.confidence < low)
    for row in conn.execute(
        sa.select(
            messages.c.conversation_id,
            messages.c.seq,
            messages.c.text,
            messages.c.intent,
            messages.c.confidence,
            customers.c.display_name,
        )
        .join(conversations, conversations.c.id == messages.c.conversation_id)
        .join(customers, customers.c.id == conversations.c.customer_id)
        .where(*_typed(start, end), messages.c.intent.is_not(None), unsure)
    ):
        why = "fallback" if row.intent == "nlu_fallback" else "low_confidence"
        found[(row.conversation_id, row.seq)] = _said(row, why)
    rank = (
        sa.func.row_number()
        .over(partition_by=handoffs.c.id, order_by=messages.c.seq.desc())
        .label("rank")
    )
    last = (
        sa.select(
            messages.c.conversation_id,
            messages.c.seq,
            messages.c.text,
            messages.c.intent,
            messages.c.confidence,
            customers.c.display_name,
            rank,
        )
        .select_from(handoffs)
        .join(messages, messages.c.conversation_id == handoffs.c.conversation_id)
        .join(conversations, conversations.c.id == handoffs.c.conversation_id)
        .join(customers, customers.c.id == conversations.c.customer_id)
        .where(
            handoffs.c.requested_at >= start,
            handoffs.c.requested_at < end,
            messages.c.created_at <= handoffs.c.requested_at,
            *_typed(start, end),
        )
        .subquery()
    )
    for row in conn.execute(sa.select(last).where(last.c.rank <= before)):
        found.setdefault((row.conversation_id, row.seq), _said(row, "before_handoff"))
    wrapups = _latest_dispositions(conn, {key[0] for key in found})
    for item in found.values():
        item["disposition"] = wrapups.get(item["conversation_id"])
    return [found[key] for key in sorted(found)]


def _said(row: Any, why: str) -> dict[str, Any]:
    return {
        "conversation_id": row.conversation_id,
        "text": row.text,
        "intent": row.intent,
        "confidence": row.confidence,
        "why": why,
        "customer_name": row.display_name,
    }


def _latest_dispositions(conn: sa.Connection, conversation_ids: set[str]) -> dict[str, str]:
    """Each conversation's latest wrap-up (its newest handoff with a disposition)."""
    latest: dict[str, str] = {}
    ids = sorted(conversation_ids)
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        for conversation_id, disposition in conn.execute(
            sa.select(handoffs.c.conversation_id, handoffs.c.disposition)
            .where(handoffs.c.conversation_id.in_(chunk), handoffs.c.disposition.is_not(None))
            .order_by(handoffs.c.id)
        ):
            latest[conversation_id] = disposition
    return latest


def _should_have(conn: sa.Connection, start: datetime, end: datetime) -> list[dict[str, Any]]:
    result = []
    for handoff in conn.execute(
        sa.select(
            handoffs.c.id,
            handoffs.c.conversation_id,
            handoffs.c.disposition,
            handoffs.c.requested_at,
            customers.c.display_name,
        )
        .join(conversations, conversations.c.id == handoffs.c.conversation_id)
        .join(customers, customers.c.id == conversations.c.customer_id)
        .where(
            handoffs.c.requested_at >= start,
            handoffs.c.requested_at < end,
            handoffs.c.bot_should_have_handled.is_(True),
        )
        .order_by(handoffs.c.requested_at)
    ):
        turns = conn.execute(
            sa.select(messages.c.text, messages.c.intent)
            .where(
                messages.c.conversation_id == handoff.conversation_id,
                messages.c.direction == Direction.INBOUND.value,
                messages.c.created_at <= handoff.requested_at,
                messages.c.payload.is_(None),
                messages.c.text != "",
            )
            .order_by(messages.c.seq.desc())
            .limit(SKELETON_TURNS)
        ).all()
        result.append(
            {
                "conversation_id": handoff.conversation_id,
                "disposition": handoff.disposition,
                "customer_name": handoff.display_name,
                "turns": [(t.text, t.intent) for t in reversed(turns)],
            }
        )
    return result
