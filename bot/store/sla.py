"""Service-level clocks as stored deadlines (see migration 0007 and handoff/sla.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.core.models import SlaClock
from bot.store.engine import StoreEngine
from bot.store.rows import to_sla_clock
from bot.store.schema import sla_clocks

__all__ = ["SlaMixin"]


class SlaMixin(StoreEngine):
    """Start, stop and sweep SLA clocks."""

    async def start_clock(
        self,
        conversation_id: str,
        handoff_id: int,
        kind: str,
        team: str,
        started_at: datetime,
        warn_at: datetime,
        due_at: datetime,
    ) -> SlaClock:
        """Start (or restart) the handoff's clock of ``kind``: new deadlines, no warning or
        breach yet."""
        values: dict[str, Any] = {
            "conversation_id": conversation_id,
            "team": team,
            "started_at": started_at,
            "warn_at": warn_at,
            "due_at": due_at,
            "next_check_at": warn_at,
            "warned_at": None,
            "breached_at": None,
            "stopped_at": None,
        }
        where = (sla_clocks.c.handoff_id == handoff_id, sla_clocks.c.kind == kind)
        for _ in range(3):
            try:
                async with self._tx(write=True) as conn:
                    row = (
                        await conn.execute(
                            sla_clocks.update()
                            .where(*where)
                            .values(**values)
                            .returning(*sla_clocks.c)
                        )
                    ).first()
                    if row is None:
                        row = (
                            await conn.execute(
                                sla_clocks.insert()
                                .values(handoff_id=handoff_id, kind=kind, **values)
                                .returning(*sla_clocks.c)
                            )
                        ).first()
                    assert row is not None
                    return to_sla_clock(row)
            except IntegrityError:
                continue  # another replica inserted it meanwhile: update it instead
        raise RuntimeError(f"could not start the {kind} clock of handoff {handoff_id}")

    async def stop_clocks(self, handoff_id: int, kinds: Iterable[str], at: datetime) -> int:
        """Stop the handoff's running clocks of ``kinds``; how many were running."""
        async with self._tx(write=True) as conn:
            result = await conn.execute(
                sla_clocks.update()
                .where(
                    sla_clocks.c.handoff_id == handoff_id,
                    sla_clocks.c.kind.in_(list(kinds)),
                    sla_clocks.c.stopped_at.is_(None),
                )
                .values(stopped_at=at, next_check_at=None)
            )
            return int(result.rowcount or 0)

    async def clock(self, handoff_id: int, kind: str) -> SlaClock | None:
        return await self._one(
            sa.select(sla_clocks).where(
                sla_clocks.c.handoff_id == handoff_id, sla_clocks.c.kind == kind
            ),
            to_sla_clock,
        )

    async def due_clocks(self, now: datetime, limit: int = 500) -> list[SlaClock]:
        """Clocks whose warning or breach is due at ``now``, the most overdue first (an index
        range read: only these rows)."""
        return await self._all(
            sa.select(sla_clocks)
            .where(sla_clocks.c.next_check_at.is_not(None), sla_clocks.c.next_check_at <= now)
            .order_by(sla_clocks.c.next_check_at)
            .limit(limit),
            to_sla_clock,
        )

    async def mark_clock(self, clock: SlaClock, **changes: Any) -> bool:
        """Record the warning or the breach of ``clock`` (warned_at / breached_at, and the next
        check) if nobody did since it was read: True for exactly one caller."""
        async with self._tx(write=True) as conn:
            result = await conn.execute(
                sla_clocks.update()
                .where(
                    sla_clocks.c.id == clock.id,
                    sla_clocks.c.next_check_at == clock.next_check_at,
                    sla_clocks.c.stopped_at.is_(None),
                )
                .values(**changes)
            )
            return bool(result.rowcount)

    async def clocks_at_risk(self) -> list[SlaClock]:
        """Running clocks past their warning and not yet missed (an index range read)."""
        return await self._all(
            sa.select(sla_clocks).where(
                sla_clocks.c.stopped_at.is_(None),
                sla_clocks.c.warned_at.is_not(None),
                sla_clocks.c.breached_at.is_(None),
                sla_clocks.c.next_check_at.is_not(None),
            ),
            to_sla_clock,
        )

    async def running_clocks(self, conversation_ids: Sequence[str]) -> list[SlaClock]:
        """The running clocks of these conversations (for the console's time to breach)."""
        if not conversation_ids:
            return []
        return await self._all(
            sa.select(sla_clocks).where(
                sla_clocks.c.conversation_id.in_(list(conversation_ids)),
                sla_clocks.c.stopped_at.is_(None),
            ),
            to_sla_clock,
        )
