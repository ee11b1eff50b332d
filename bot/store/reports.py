"""Service figures computed in SQL from the conversation record (docs/metrics.md defines each).

Every figure is over a window ``[start, end)`` of the time its subject began: conversations by
``created_at``, handoffs by ``requested_at``, SLA clocks by ``started_at``; ``team`` (optional)
keeps the handoffs, ratings and clocks of one team (containment is the bot's, for all teams).
Durations are computed by the database (``julianday`` on SQLite, ``epoch`` on PostgreSQL) and
come back sorted, for percentiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bot.core.types import Direction
from bot.store.engine import StoreEngine
from bot.store.schema import conversations, csat, handoffs, messages, sla_clocks

__all__ = ["RawReport", "ReportsMixin"]

# How many of the customer's first messages to a person are checked for a repeated fact.
REPEAT_LOOKAHEAD = 3
REPEATABLE_FACTS = ("order_number", "serial_number")


@dataclass
class RawReport:
    """What the database counted; handoff/reports.py turns it into the dashboard's figures."""

    conversations: int = 0
    contained: int = 0
    handoffs: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    resolved: int = 0
    wait_seconds: list[float] = field(default_factory=list)
    first_reply_seconds: list[float] = field(default_factory=list)
    handle_seconds: list[float] = field(default_factory=list)
    ratings: dict[int, int] = field(default_factory=dict)
    # team -> kind -> (met, missed, running)
    sla: dict[str, dict[str, tuple[int, int, int]]] = field(default_factory=dict)
    repeat_checked: int = 0
    repeated: int = 0
    # day (YYYY-MM-DD, UTC) -> counts of that day, for the charts (see _read_daily)
    daily: dict[str, dict[str, float]] = field(default_factory=dict)


def _day(dialect: str, column: Any) -> Any:
    """The UTC day of a timestamp, as YYYY-MM-DD text."""
    if dialect == "sqlite":
        return sa.func.date(column)  # stored as naive UTC
    return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")


def _seconds(dialect: str, later: Any, earlier: Any) -> Any:
    if dialect == "sqlite":
        return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0
    return sa.extract("epoch", later - earlier)


# An SLA clock met its target (stopped before the deadline) or missed it.
_MET = sa.and_(sla_clocks.c.breached_at.is_(None), sla_clocks.c.stopped_at.is_not(None))
_MISSED = sla_clocks.c.breached_at.is_not(None)


def _count(condition: Any) -> Any:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _facts(facts: Any) -> list[str]:
    """The order and serial numbers among a packet's facts."""
    if not isinstance(facts, dict):
        return []
    return [str(facts[k]) for k in REPEATABLE_FACTS if facts.get(k) not in (None, "")]


class ReportsMixin(StoreEngine):
    """The dashboard's numbers."""

    async def raw_report(self, start: datetime, end: datetime, team: str | None) -> RawReport:
        def read(conn: sa.Connection) -> RawReport:
            return _read_report(conn, start, end, team)

        return await self._sweep(read)


def _read_report(
    conn: sa.Connection, start: datetime, end: datetime, team: str | None
) -> RawReport:
    dialect = conn.dialect.name
    report = RawReport()
    # A conversation is opened by the customer's first message (every channel), so one with
    # a message has last_seq > 0: an index-only count. Those handed over are counted from the
    # (far fewer) handoffs.
    opened = sa.and_(
        conversations.c.created_at >= start,
        conversations.c.created_at < end,
        conversations.c.last_seq > 0,
    )
    report.conversations = int(
        conn.execute(
            sa.select(sa.func.count()).select_from(conversations).where(opened)
        ).scalar_one()
    )
    handed = int(
        conn.execute(
            sa.select(sa.func.count(sa.distinct(handoffs.c.conversation_id)))
            .join(conversations, conversations.c.id == handoffs.c.conversation_id)
            # A handoff comes after its conversation opened: only these handoffs can count.
            .where(opened, handoffs.c.requested_at >= start)
        ).scalar_one()
    )
    report.contained = report.conversations - handed

    of_handoffs: list[Any] = [handoffs.c.requested_at >= start, handoffs.c.requested_at < end]
    if team is not None:
        of_handoffs.append(handoffs.c.team == team)
    report.by_reason = {
        str(reason): int(count)
        for reason, count in conn.execute(
            sa.select(handoffs.c.reason, sa.func.count())
            .where(*of_handoffs)
            .group_by(handoffs.c.reason)
        )
    }
    report.handoffs = sum(report.by_reason.values())
    report.resolved = int(
        conn.execute(
            sa.select(sa.func.count()).where(*of_handoffs, handoffs.c.resolved_at.is_not(None))
        ).scalar_one()
    )

    def durations(later: Any, earlier: Any) -> list[float]:
        seconds = _seconds(dialect, later, earlier)
        query = (
            sa.select(seconds)
            .where(*of_handoffs, later.is_not(None), earlier.is_not(None))
            .order_by(seconds)
        )
        return [max(0.0, float(value)) for (value,) in conn.execute(query)]

    report.wait_seconds = durations(handoffs.c.assigned_at, handoffs.c.requested_at)
    report.first_reply_seconds = durations(handoffs.c.first_agent_reply_at, handoffs.c.requested_at)
    report.handle_seconds = durations(handoffs.c.resolved_at, handoffs.c.assigned_at)

    report.ratings = {
        int(rating): int(count)
        for rating, count in conn.execute(
            sa.select(csat.c.rating, sa.func.count())
            .join(handoffs, handoffs.c.id == csat.c.handoff_id)
            .where(*of_handoffs)
            .group_by(csat.c.rating)
        )
    }

    of_clocks: list[Any] = [sla_clocks.c.started_at >= start, sla_clocks.c.started_at < end]
    if team is not None:
        of_clocks.append(sla_clocks.c.team == team)
    for clock_team, kind, n_met, n_missed, n_running in conn.execute(
        sa.select(
            sla_clocks.c.team,
            sla_clocks.c.kind,
            _count(_MET),
            _count(_MISSED),
            _count(sa.and_(~_MISSED, sla_clocks.c.stopped_at.is_(None))),
        )
        .where(*of_clocks)
        .group_by(sla_clocks.c.team, sla_clocks.c.kind)
    ):
        report.sla.setdefault(str(clock_team), {})[str(kind)] = (
            int(n_met or 0),
            int(n_missed or 0),
            int(n_running or 0),
        )

    _count_repeats(conn, report, of_handoffs)
    _read_daily(conn, report, opened, of_handoffs, of_clocks)
    return report


def _read_daily(
    conn: sa.Connection,
    report: RawReport,
    opened: Any,
    of_handoffs: Sequence[Any],
    of_clocks: Sequence[Any],
) -> None:
    """Per day: conversations opened and those handed over (by the day they opened), handoffs
    and their first replies and ratings (by the day requested), SLA clocks met and missed (by
    the day started)."""
    dialect = conn.dialect.name

    def add(day: Any, **counts: Any) -> None:
        entry = report.daily.setdefault(str(day), {})
        for key, value in counts.items():
            entry[key] = entry.get(key, 0) + float(value or 0)

    day = _day(dialect, conversations.c.created_at)
    for when, count in conn.execute(sa.select(day, sa.func.count()).where(opened).group_by(day)):
        add(when, conversations=count)
    for when, count in conn.execute(
        sa.select(day, sa.func.count(sa.distinct(handoffs.c.conversation_id)))
        .join(conversations, conversations.c.id == handoffs.c.conversation_id)
        .where(opened)
        .group_by(day)
    ):
        add(when, handed=count)
    day = _day(dialect, handoffs.c.requested_at)
    reply = _seconds(dialect, handoffs.c.first_agent_reply_at, handoffs.c.requested_at)
    for when, count, replies, reply_sum in conn.execute(
        sa.select(
            day, sa.func.count(), sa.func.count(handoffs.c.first_agent_reply_at), sa.func.sum(reply)
        )
        .where(*of_handoffs)
        .group_by(day)
    ):
        add(when, handoffs=count, first_replies=replies, first_reply_seconds=reply_sum)
    for when, ratings, rating_sum in conn.execute(
        sa.select(day, sa.func.count(), sa.func.sum(csat.c.rating))
        .join(handoffs, handoffs.c.id == csat.c.handoff_id)
        .where(*of_handoffs)
        .group_by(day)
    ):
        add(when, ratings=ratings, rating_sum=rating_sum)
    day = _day(dialect, sla_clocks.c.started_at)
    for when, n_met, n_missed in conn.execute(
        sa.select(day, _count(_MET), _count(_MISSED)).where(*of_clocks).group_by(day)
    ):
        add(when, sla_met=n_met, sla_missed=n_missed)


def _count_repeats(conn: sa.Connection, report: RawReport, of_handoffs: Sequence[Any]) -> None:
    """The customer-repeated rate's counts: of the handoffs whose packet held an order or
    serial number, those where the customer wrote it again in their first messages after the
    handoff (the agent already had it). One query: each handoff with its customer's first
    ``REPEAT_LOOKAHEAD`` messages after it (a window function, on SQLite and PostgreSQL)."""
    facts: dict[int, list[str]] = {}
    packet_facts = handoffs.c.packet["facts"]  # only that part of each packet is read
    for handoff_id, value in conn.execute(
        sa.select(handoffs.c.id, packet_facts).where(*of_handoffs, packet_facts.is_not(None))
    ):
        found = _facts(value)
        if found:
            facts[int(handoff_id)] = found
    report.repeat_checked = len(facts)
    if not facts:
        return
    rank = (
        sa.func.row_number().over(partition_by=handoffs.c.id, order_by=messages.c.seq).label("rank")
    )
    after = (
        sa.select(handoffs.c.id.label("handoff_id"), messages.c.text, rank)
        .join(messages, messages.c.conversation_id == handoffs.c.conversation_id)
        .where(
            *of_handoffs,
            messages.c.direction == Direction.INBOUND.value,
            messages.c.created_at > handoffs.c.requested_at,
        )
        .subquery()
    )
    repeated: set[int] = set()
    for handoff_id, text in conn.execute(
        sa.select(after.c.handoff_id, after.c.text).where(after.c.rank <= REPEAT_LOOKAHEAD)
    ):
        wanted = facts.get(int(handoff_id))
        if wanted and any(fact in text for fact in wanted):
            repeated.add(int(handoff_id))
    report.repeated = len(repeated)
