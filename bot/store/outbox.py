"""The outbox: stored outbound messages waiting for delivery to their channel.

An item is leased by one worker at a time, and only the oldest undelivered items of a
conversation are handed out (see :meth:`OutboxMixin.outbox_claim`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.core.clock import utcnow
from bot.core.errors import NotFound
from bot.core.models import OutboxItem
from bot.store.conversations import of_conversation
from bot.store.engine import StoreEngine, insert_id
from bot.store.rows import to_outbox_item
from bot.store.schema import aware, outbox

__all__ = ["OutboxMixin"]

# Key of the PostgreSQL advisory lock that lets one outbox claim run at a time (see outbox_claim).
_OUTBOX_CLAIM_LOCK_KEY = 0x6373626F746F62  # "csbotob"
# last_error is kept to this many characters.
_MAX_ERROR_CHARS = 2000


def _failed_attempt(error: str) -> dict[str, Any]:
    """The changes of a failed delivery attempt: one more attempt, its error, no lease."""
    return {
        "attempts": outbox.c.attempts + 1,
        "last_error": error[:_MAX_ERROR_CHARS],
        "leased_until": None,
    }


class OutboxMixin(StoreEngine):
    """The store's outbox: one item per outbound message to deliver, delivered in order."""

    async def outbox_add(self, message_id: int, conversation_id: str, channel: str) -> int:
        """Queue a stored message for delivery on ``channel``, due now; returns the item id.

        Idempotent: a message that is queued already keeps its one item, whose id is returned.
        NotFound if the message or the conversation does not exist.
        """
        try:
            async with self._tx(write=True) as conn:
                return await insert_id(
                    conn,
                    outbox,
                    message_id=message_id,
                    conversation_id=conversation_id,
                    channel=channel,
                    attempts=0,
                    next_attempt_at=utcnow(),
                )
        except IntegrityError as exc:
            async with self._tx() as conn:
                existing = (
                    await conn.execute(
                        sa.select(outbox.c.id).where(outbox.c.message_id == message_id)
                    )
                ).scalar_one_or_none()
            if existing is None:
                raise NotFound(
                    f"no message {message_id} or no conversation {conversation_id}"
                ) from exc
            return int(existing)

    async def outbox_claim(
        self, now: datetime, lease_seconds: float, limit: int = 100
    ) -> list[OutboxItem]:
        """Lease up to ``limit`` due items until ``now + lease_seconds``, oldest id first.

        An item is due when it is neither delivered nor given up, its ``next_attempt_at`` is
        not after ``now`` and nobody holds an unexpired lease on it. Per conversation only the
        head of the line is handed out: an item is skipped while an older pending item of its
        conversation is leased by someone else or waiting for its next attempt, so whoever
        delivers the claimed items can keep each conversation's order.

        On PostgreSQL the due rows are locked ``FOR UPDATE SKIP LOCKED``, so two processes
        never lease the same item; a transaction-scoped advisory lock also makes concurrent
        claims take turns, so the head-of-line check always sees the other claimers' leases.
        On SQLite the write transaction (BEGIN IMMEDIATE) already lets one claimer in at a time.
        """
        now = aware(now, "now")
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, not {lease_seconds!r}")
        if limit < 1:
            return []
        older = outbox.alias("older")
        held_up = (
            sa.exists()
            .where(
                older.c.conversation_id == outbox.c.conversation_id,
                older.c.id < outbox.c.id,
                older.c.delivered_at.is_(None),
                older.c.gave_up_at.is_(None),
                sa.or_(
                    older.c.next_attempt_at > now,
                    sa.and_(older.c.leased_until.is_not(None), older.c.leased_until > now),
                ),
            )
            .correlate(outbox)
        )
        due = (
            sa.select(outbox.c.id)
            .where(
                outbox.c.delivered_at.is_(None),
                outbox.c.gave_up_at.is_(None),
                outbox.c.next_attempt_at <= now,
                sa.or_(outbox.c.leased_until.is_(None), outbox.c.leased_until <= now),
                ~held_up,
            )
            .order_by(outbox.c.id)
            .limit(limit)
        )
        async with self._tx(write=True) as conn:
            if self._dialect == "postgresql":
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _OUTBOX_CLAIM_LOCK_KEY}
                )
                due = due.with_for_update(skip_locked=True)
            ids = list((await conn.execute(due)).scalars())
            if not ids:
                return []
            rows = await conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(ids))
                .values(leased_until=now + timedelta(seconds=lease_seconds))
                .returning(*outbox.c)
            )
            return sorted((to_outbox_item(row) for row in rows), key=lambda item: item.id)

    async def outbox_delivered(self, item_id: int, at: datetime) -> None:
        """Mark an item delivered at ``at`` and drop its lease. NotFound for an unknown item."""
        await self._outbox_update(item_id, delivered_at=aware(at, "at"), leased_until=None)

    async def outbox_retry(self, item_id: int, error: str, next_attempt_at: datetime) -> None:
        """Count a failed attempt, remember ``error`` and try again at ``next_attempt_at``.

        Drops the lease. NotFound for an unknown item.
        """
        await self._outbox_update(
            item_id,
            **_failed_attempt(error),
            next_attempt_at=aware(next_attempt_at, "next_attempt_at"),
        )

    async def outbox_give_up(self, item_id: int, error: str, at: datetime) -> None:
        """Count a last failed attempt and stop trying (``gave_up_at``); drops the lease.

        NotFound for an unknown item.
        """
        await self._outbox_update(item_id, **_failed_attempt(error), gave_up_at=aware(at, "at"))

    async def outbox_release(self, item_ids: Sequence[int]) -> None:
        """Drop the leases on pending items without counting an attempt (they were not tried).

        Unknown, delivered and given-up items are left alone.
        """
        if not item_ids:
            return
        async with self._tx(write=True) as conn:
            await conn.execute(
                outbox.update()
                .where(
                    outbox.c.id.in_(list(item_ids)),
                    outbox.c.delivered_at.is_(None),
                    outbox.c.gave_up_at.is_(None),
                )
                .values(leased_until=None)
            )

    async def outbox_backlog(self) -> int:
        """Items neither delivered nor given up (waiting, or being retried)."""
        query = (
            sa.select(sa.func.count())
            .select_from(outbox)
            .where(outbox.c.delivered_at.is_(None), outbox.c.gave_up_at.is_(None))
        )
        async with self._tx() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def outbox_items(self, conversation_id: str) -> list[OutboxItem]:
        """All outbox items of a conversation (pending or not), oldest first."""
        return await self._all(of_conversation(outbox, conversation_id), to_outbox_item)

    async def _outbox_update(self, item_id: int, **values: Any) -> None:
        await self._update_one(
            outbox.update().where(outbox.c.id == item_id).values(**values),
            None,
            f"no outbox item {item_id}",
        )
