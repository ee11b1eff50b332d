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
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bot.core.clock import utcnow
from bot.core.types import Direction
from bot.store.engine import StoreEngine
from bot.store.schema import conversations, csat, handoffs, messages, sla_clocks, survey_answers

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
    # The customer's topic before each handoff (None: none understood) -> handoffs.
    by_intent: dict[str | None, int] = field(default_factory=dict)
    # The agents' wrap-up of resolved handoffs: disposition -> count; "the bot should have".
    dispositions: dict[str, int] = field(default_factory=dict)
    bot_should_have: int = 0
    # First-contact resolution: resolved handoffs whose return window is over; of them, those
    # with no new handoff of the same customer within it.
    fcr_checked: int = 0
    fcr_resolved: int = 0
    fcr_pending: int = 0
    # Durable containment: contained conversations whose return window is over; of them,
    # those whose customer did not ask for a person within it.
    durable_checked: int = 0
    durable: int = 0
    durable_pending: int = 0
    # Customer messages the bot read in the period, those it did not understand
    # (nlu_fallback), and per intent: (messages, low-confidence ones, average confidence).
    # CES and NPS answers to the period's handoffs: kind -> score -> count.
    surveys: dict[str, dict[int, int]] = field(default_factory=dict)
    nlu_messages: int = 0
    nlu_fallbacks: int = 0
    intents: dict[str, tuple[int, int, float]] = field(default_factory=dict)
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

    async def raw_report(
        self,
        start: datetime,
        end: datetime,
        team: str | None,
        *,
        now: datetime | None = None,
        return_window: timedelta = timedelta(hours=72),
        low_confidence: float = 0.6,
    ) -> RawReport:
        """``return_window``: first-contact resolution and durable containment (see RawReport);
        ``now``: what counts as over (the clock's now by default)."""
        moment = now or utcnow()

        def read(conn: sa.Connection) -> RawReport:
            report = _read_report(conn, start, end, team)
            _read_returns(conn, report, start, end, team, moment, return_window)
            _read_nlu(conn, report, start, end, low_confidence)
            return report

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
    report.by_intent = {
        (str(intent) if intent is not None else None): int(count)
        for intent, count in conn.execute(
            sa.select(handoffs.c.intent, sa.func.count())
            .where(*of_handoffs)
            .group_by(handoffs.c.intent)
        )
    }
    resolved = [*of_handoffs, handoffs.c.resolved_at.is_not(None)]
    report.dispositions = {
        str(disposition): int(count)
        for disposition, count in conn.execute(
            sa.select(handoffs.c.disposition, sa.func.count())
            .where(*resolved, handoffs.c.disposition.is_not(None))
            .group_by(handoffs.c.disposition)
        )
    }
    for kind, score, count in conn.execute(
        sa.select(survey_answers.c.kind, survey_answers.c.score, sa.func.count())
        .join(handoffs, handoffs.c.id == survey_answers.c.handoff_id)
        .where(*of_handoffs)
        .group_by(survey_answers.c.kind, survey_answers.c.score)
    ):
        report.surveys.setdefault(str(kind), {})[int(score)] = int(count)
    report.bot_should_have = int(
        conn.execute(
            sa.select(sa.func.count()).where(
                *resolved, handoffs.c.bot_should_have_handled.is_(True)
            )
        ).scalar_one()
    )
    return report


def _read_returns(
    conn: sa.Connection,
    report: RawReport,
    start: datetime,
    end: datetime,
    team: str | None,
    now: datetime,
    window: timedelta,
) -> None:
    """First-contact resolution and durable containment: did the customer come back for a
    person within ``window``? Only subjects whose window is over count; the rest are pending."""
    dialect = conn.dialect.name
    seconds = window.total_seconds()
    over = now - window
    later = handoffs.alias("later")
    later_conversation = conversations.alias("later_conversation")

    def came_back(since: Any) -> list[Any]:
        """Join conditions: a handoff (``later``) of the same customer requested within the
        window after ``since``. Set-based (a join driven by the handoffs, which are few), not
        a subquery per row."""
        return [
            later.c.requested_at > since,
            _seconds(dialect, later.c.requested_at, since) <= seconds,
        ]

    def count(query: Any) -> int:
        return int(conn.execute(query).scalar_one() or 0)

    of_handoffs: list[Any] = [
        handoffs.c.requested_at >= start,
        handoffs.c.requested_at < end,
        handoffs.c.resolved_at.is_not(None),
    ]
    if team is not None:
        of_handoffs.append(handoffs.c.team == team)
    settled = handoffs.c.resolved_at <= over
    checked, pending = conn.execute(
        sa.select(_count(settled), _count(~settled)).where(*of_handoffs)
    ).one()
    returned = count(
        sa.select(sa.func.count(sa.distinct(handoffs.c.id)))
        .select_from(handoffs)
        .join(conversations, conversations.c.id == handoffs.c.conversation_id)
        .join(later_conversation, later_conversation.c.customer_id == conversations.c.customer_id)
        .join(later, later.c.conversation_id == later_conversation.c.id)
        .where(*of_handoffs, settled, *came_back(handoffs.c.resolved_at))
    )
    report.fcr_checked, report.fcr_pending = int(checked or 0), int(pending or 0)
    report.fcr_resolved = report.fcr_checked - returned

    def contained(since: datetime, until: datetime) -> list[Any]:
        return [
            conversations.c.created_at >= since,
            conversations.c.created_at < until,
            conversations.c.last_seq > 0,
            ~sa.exists().where(handoffs.c.conversation_id == conversations.c.id),
        ]

    # The period's contained conversations are counted already (report.contained): only the
    # part whose window is still open is read (the last days), and the returns of the rest.
    settled_until = min(end, max(start, over))
    pending = (
        count(sa.select(sa.func.count()).where(*contained(settled_until, end)))
        if settled_until < end
        else 0
    )
    returned = (
        count(
            sa.select(sa.func.count(sa.distinct(conversations.c.id)))
            .select_from(conversations)
            .join(
                later_conversation, later_conversation.c.customer_id == conversations.c.customer_id
            )
            .join(later, later.c.conversation_id == later_conversation.c.id)
            .where(*contained(start, settled_until), *came_back(conversations.c.created_at))
        )
        if start < settled_until
        else 0
    )
    report.durable_pending = pending
    report.durable_checked = report.contained - pending
    report.durable = report.durable_checked - returned


def _read_nlu(
    conn: sa.Connection, report: RawReport, start: datetime, end: datetime, low: float
) -> None:
    """What the bot made of the period's customer messages: how many it read, how many it did
    not understand, and per intent how many and how sure it was."""
    read = [
        messages.c.direction == Direction.INBOUND.value,
        messages.c.created_at >= start,
        messages.c.created_at < end,
        messages.c.intent.is_not(None),
    ]
    for intent, count, unsure, average in conn.execute(
        sa.select(
            messages.c.intent,
            sa.func.count(),
            _count(messages.c.confidence < low),
            sa.func.avg(messages.c.confidence),
        )
        .where(*read)
        .group_by(messages.c.intent)
    ):
        report.intents[str(intent)] = (int(count), int(unsure or 0), float(average or 0.0))
    report.nlu_messages = sum(n for n, _, _ in report.intents.values())
    report.nlu_fallbacks = report.intents.get("nlu_fallback", (0, 0, 0.0))[0]


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
