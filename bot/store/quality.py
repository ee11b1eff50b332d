"""Quality alerts: contacts per problem per hour, their baseline, and the alerts themselves
(handoff/quality.py decides; docs/metrics.md states the rule)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.core.models import QualityAlert
from bot.core.types import Direction
from bot.store.engine import StoreEngine, insert_record
from bot.store.rows import to_quality_alert
from bot.store.schema import messages, quality_alerts

__all__ = ["QualityMixin"]


def _contacts(start: datetime, end: datetime, ignored: list[str]) -> sa.Select[Any]:
    """Per intent: how many conversations had a customer message read as it in
    ``[start, end)`` (``ignored``: intents that name no problem)."""
    return (
        sa.select(messages.c.intent, sa.func.count(sa.distinct(messages.c.conversation_id)))
        .where(
            messages.c.direction == Direction.INBOUND.value,
            messages.c.created_at >= start,
            messages.c.created_at < end,
            messages.c.intent.is_not(None),
            messages.c.intent.not_in(ignored),
        )
        .group_by(messages.c.intent)
    )


class QualityMixin(StoreEngine):
    async def contacts_per_problem(
        self, start: datetime, end: datetime, ignore: Iterable[str]
    ) -> dict[str, int]:
        """Per intent (the customers' problems; ``ignore`` the ones that name none): how many
        conversations had a customer message read as it in ``[start, end)``."""
        query = _contacts(start, end, sorted(ignore))
        return dict(await self._all(query, lambda row: (str(row[0]), int(row[1]))))

    async def contacts_per_problem_in(
        self, windows: Sequence[tuple[datetime, datetime]], ignore: Iterable[str]
    ) -> dict[str, int]:
        """Like :meth:`contacts_per_problem`, over several windows at once (a conversation
        counts once per window it wrote in): the baseline's same hour of earlier days. Runs
        as a sweep (in a worker thread on SQLite), not on the event loop."""
        ignored = sorted(ignore)

        def read(conn: sa.Connection) -> dict[str, int]:
            totals: dict[str, int] = {}
            for start, end in windows:
                query = _contacts(start, end, ignored)
                for intent, count in conn.execute(query):
                    totals[str(intent)] = totals.get(str(intent), 0) + int(count)
            return totals

        return await self._sweep(read)

    async def add_quality_alert(self, alert: QualityAlert) -> QualityAlert | None:
        """Store a new alert; None when that problem's alert of that hour exists already."""
        try:
            async with self._tx(write=True) as conn:
                return await insert_record(conn, quality_alerts, alert)
        except IntegrityError:
            return None

    async def quality_alerts(self, since: datetime, limit: int = 50) -> list[QualityAlert]:
        """Alerts of the hours since ``since``, newest first."""
        query = (
            sa.select(quality_alerts)
            .where(quality_alerts.c.hour >= since)
            .order_by(quality_alerts.c.hour.desc(), quality_alerts.c.id.desc())
            .limit(limit)
        )
        return await self._all(query, to_quality_alert)

    async def acknowledge_quality_alert(
        self, alert_id: int, agent_id: int, at: datetime
    ) -> QualityAlert | None:
        """Mark it acknowledged (the first acknowledgement stays); None for an unknown id."""
        async with self._tx(write=True) as conn:
            await conn.execute(
                quality_alerts.update()
                .where(quality_alerts.c.id == alert_id, quality_alerts.c.acknowledged_at.is_(None))
                .values(acknowledged_by=agent_id, acknowledged_at=at)
            )
            row = (
                await conn.execute(sa.select(quality_alerts).where(quality_alerts.c.id == alert_id))
            ).first()
        return to_quality_alert(row) if row is not None else None
