"""The supervisors' dashboard: live tiles and the figures of a period, each defined once here
and in docs/metrics.md.

Figures of a period ``[start, end)`` (of the time each subject began), for one team or all:

* containment: conversations with a customer message and no handoff / such conversations;
* handoff rate: handoffs / conversations, and the handoffs by reason;
* queue wait (handoff → an agent has it) and first response (handoff → the agent's first
  reply): p50 and p90 in seconds; average handle time (assigned → resolved);
* CSAT: the average of the ratings of the period's handoffs, their distribution, and the
  response rate (ratings / resolved handoffs);
* SLA attainment per team and target: clocks met / (met + missed); running ones wait;
* customer-repeated rate: of the handoffs whose packet held an order or serial number, the
  share in which the customer wrote it again in their first three messages to the person.

Live tiles (now, all teams unless one is chosen): conversations waiting, agents online, and
conversations at risk (an SLA warning given, the target not yet missed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.core.state import ConversationState
from bot.pipeline.context import Component, EngineContext
from bot.store.reports import RawReport
from handoff.queue import works_for
from handoff.routing import availability

MAX_DAYS = 366


def percentile(ordered: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile of sorted values (None for none)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(share * len(ordered)))
    return round(ordered[rank - 1], 1)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(raw: RawReport) -> dict[str, Any]:
    """The period's figures from what the database counted (see the module's docstring)."""
    rated = sum(raw.ratings.values())
    sla: dict[str, dict[str, Any]] = {}
    for team, kinds in sorted(raw.sla.items()):
        for kind, (met, missed, running) in sorted(kinds.items()):
            sla.setdefault(team, {})[kind] = {
                "met": met,
                "missed": missed,
                "running": running,
                "attainment": _share(met, met + missed),
            }
    return {
        "conversations": raw.conversations,
        "contained": raw.contained,
        "containment": _share(raw.contained, raw.conversations),
        "handoffs": raw.handoffs,
        "handoff_rate": _share(raw.handoffs, raw.conversations),
        "handoffs_by_reason": dict(sorted(raw.by_reason.items(), key=lambda kv: -kv[1])),
        "queue_wait_seconds": {
            "p50": percentile(raw.wait_seconds, 0.5),
            "p90": percentile(raw.wait_seconds, 0.9),
            "count": len(raw.wait_seconds),
        },
        "first_response_seconds": {
            "p50": percentile(raw.first_reply_seconds, 0.5),
            "p90": percentile(raw.first_reply_seconds, 0.9),
            "count": len(raw.first_reply_seconds),
        },
        "average_handle_seconds": round(sum(raw.handle_seconds) / len(raw.handle_seconds), 1)
        if raw.handle_seconds
        else None,
        "resolved": raw.resolved,
        "csat": {
            "average": round(sum(r * n for r, n in raw.ratings.items()) / rated, 2)
            if rated
            else None,
            "distribution": {str(r): raw.ratings.get(r, 0) for r in range(1, 6)},
            "ratings": rated,
            "response_rate": _share(rated, raw.resolved),
        },
        "sla": sla,
        "customer_repeated": {
            "checked": raw.repeat_checked,
            "repeated": raw.repeated,
            "rate": _share(raw.repeated, raw.repeat_checked),
        },
        "durable_containment": {
            "checked": raw.durable_checked,
            "durable": raw.durable,
            "pending": raw.durable_pending,
            "rate": _share(raw.durable, raw.durable_checked),
        },
        "first_contact_resolution": {
            "checked": raw.fcr_checked,
            "resolved": raw.fcr_resolved,
            "pending": raw.fcr_pending,
            "rate": _share(raw.fcr_resolved, raw.fcr_checked),
        },
        "handoffs_by_intent": {
            (intent or NOT_UNDERSTOOD): count
            for intent, count in sorted(raw.by_intent.items(), key=lambda kv: (-kv[1], kv[0] or ""))
        },
        "dispositions": dict(sorted(raw.dispositions.items(), key=lambda kv: (-kv[1], kv[0]))),
        "bot_should_have_handled": raw.bot_should_have,
        "ces": _ces(raw.surveys.get("ces", {})),
        "nps": _nps(raw.surveys.get("nps", {})),
        "bot": {
            "messages": raw.nlu_messages,
            "fallbacks": raw.nlu_fallbacks,
            "fallback_rate": _share(raw.nlu_fallbacks, raw.nlu_messages),
            "lowest_confidence": lowest_confidence(raw.intents),
        },
    }


def _ces(scores: dict[int, int]) -> dict[str, Any]:
    """Customer effort: the mean of the 1-7 answers (7: very easy)."""
    answers = sum(scores.values())
    mean = sum(s * n for s, n in scores.items()) / answers if answers else None
    return {"answers": answers, "average": round(mean, 2) if mean is not None else None}


def _nps(scores: dict[int, int]) -> dict[str, Any]:
    """Net promoter score: % promoters (9-10) minus % detractors (0-6), -100 to 100."""
    answers = sum(scores.values())
    promoters = sum(n for s, n in scores.items() if s >= 9)
    detractors = sum(n for s, n in scores.items() if s <= 6)
    return {
        "answers": answers,
        "promoters": promoters,
        "passives": answers - promoters - detractors,
        "detractors": detractors,
        "score": round(100 * (promoters - detractors) / answers) if answers else None,
    }


NOT_UNDERSTOOD = "(none understood)"
LOWEST_SHOWN = 5


def lowest_confidence(
    intents: dict[str, tuple[int, int, float]], shown: int = LOWEST_SHOWN
) -> list[dict[str, Any]]:
    """The intents the bot was least sure of (by average confidence; not nlu_fallback, which
    is the absence of one), with how many messages and how many below the threshold."""
    ranked = sorted(
        ((name, n, unsure, average) for name, (n, unsure, average) in intents.items()),
        key=lambda row: (row[3], -row[1], row[0]),
    )
    return [
        {
            "intent": name,
            "messages": n,
            "low_confidence": unsure,
            "average_confidence": round(average, 3),
        }
        for name, n, unsure, average in ranked
        if name != "nlu_fallback"
    ][:shown]


def daily(raw: RawReport, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """One row per day of the period (days without any activity too), for the charts."""
    rows = []
    day = start.date()
    while day < end.date() or (day == end.date() and end.time() != datetime.min.time()):
        counts = raw.daily.get(day.isoformat(), {})
        opened = int(counts.get("conversations", 0))
        handed = int(counts.get("handed", 0))
        replies = counts.get("first_replies", 0)
        ratings = counts.get("ratings", 0)
        met, missed = counts.get("sla_met", 0), counts.get("sla_missed", 0)
        rows.append(
            {
                "day": day.isoformat(),
                "conversations": opened,
                "containment": _share(opened - handed, opened),
                "handoffs": int(counts.get("handoffs", 0)),
                "first_response_average_seconds": round(
                    counts.get("first_reply_seconds", 0) / replies, 1
                )
                if replies
                else None,
                "csat_average": round(counts.get("rating_sum", 0) / ratings, 2)
                if ratings
                else None,
                "ratings": int(ratings),
                "sla_attainment": _share(int(met), int(met + missed)),
            }
        )
        day += timedelta(days=1)
    return rows


# The tables a supervisor can download, each as (columns, rows of the report).
CSV_TABLES = ("daily", "reasons", "sla", "ratings", "intents", "dispositions", "confidence")


def csv_rows(report: dict[str, Any], table: str) -> list[list[Any]]:
    """A table of the dashboard report, header first, for a CSV download."""
    period = report["period"]
    if table == "daily":
        columns = list(period["daily"][0]) if period["daily"] else ["day"]
        return [columns] + [[row[c] for c in columns] for row in period["daily"]]
    if table == "reasons":
        return [["reason", "handoffs"]] + [
            [reason, count] for reason, count in period["handoffs_by_reason"].items()
        ]
    if table == "sla":
        header = ["team", "target", "met", "missed", "running", "attainment"]
        return [header] + [
            [team, kind, f["met"], f["missed"], f["running"], f["attainment"]]
            for team, kinds in period["sla"].items()
            for kind, f in kinds.items()
        ]
    if table == "ratings":
        return [["stars", "ratings"]] + [
            [stars, count] for stars, count in period["csat"]["distribution"].items()
        ]
    if table == "intents":
        return [["intent", "handoffs"]] + [
            [intent, count] for intent, count in period["handoffs_by_intent"].items()
        ]
    if table == "dispositions":
        return (
            [["disposition", "resolved"]]
            + [[name, count] for name, count in period["dispositions"].items()]
            + [["(the bot should have handled it)", period["bot_should_have_handled"]]]
        )
    if table == "confidence":
        header = ["intent", "messages", "low_confidence", "average_confidence"]
        return [header] + [[row[c] for c in header] for row in period["bot"]["lowest_confidence"]]
    raise ValueError(f"unknown table {table!r}; one of {', '.join(CSV_TABLES)}")


class Dashboard(Component):
    """What the dashboard API returns."""

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)

    async def live(self, team: str | None) -> dict[str, Any]:
        waiting = [
            c
            for c in await self.store.conversations_in_states([ConversationState.QUEUED])
            if team is None or c.team == team
        ]
        present = set(await self.broker.present())
        default = self.settings.queue.default_team
        online = [
            a
            for a in await self.store.agents()
            if availability(a, present) == "online"
            and (team is None or works_for(a, team, default))
        ]
        at_risk = {
            clock.conversation_id
            for clock in await self.store.clocks_at_risk()
            if team is None or clock.team == team
        }
        return {"waiting": len(waiting), "agents_online": len(online), "at_risk": len(at_risk)}

    async def live_by_team(self, now: datetime) -> dict[str, dict[str, float]]:
        """The live figures of every team at once (the /metrics gauges): waiting, the oldest
        wait in seconds, agents online, and conversations at risk of an SLA breach."""
        teams = {
            t.name: {
                "waiting": 0.0,
                "oldest_wait_seconds": 0.0,
                "agents_online": 0.0,
                "at_risk": 0.0,
            }
            for t in self.settings.queue.teams
        }
        default = self.settings.queue.default_team
        for queued in await self.store.queue_rows([ConversationState.QUEUED]):
            row = teams.get(queued.conversation.team or default)
            if row is not None:
                row["waiting"] += 1
                since = queued.handoff_requested_at or queued.conversation.updated_at
                waited = max(0.0, (now - since).total_seconds())
                row["oldest_wait_seconds"] = max(row["oldest_wait_seconds"], waited)
        present = set(await self.broker.present())
        for agent in await self.store.agents():
            if availability(agent, present) == "online":
                for name, row in teams.items():
                    row["agents_online"] += works_for(agent, name, default)
        for _, team in {
            (clock.conversation_id, clock.team) for clock in await self.store.clocks_at_risk()
        }:
            if team in teams:
                teams[team]["at_risk"] += 1
        return teams

    async def report(self, start: datetime, end: datetime, team: str | None) -> dict[str, Any]:
        metrics = self.settings.metrics
        raw = await self.store.raw_report(
            start,
            end,
            team,
            now=self.clock(),
            return_window=timedelta(hours=metrics.return_window_hours),
            low_confidence=metrics.low_confidence,
        )
        return {
            "from": start.isoformat(),
            "to": end.isoformat(),
            "team": team,
            "teams": [{"name": t.name, "title": t.title} for t in self.settings.queue.teams],
            "live": await self.live(team),
            "period": {**figures(raw), "daily": daily(raw, start, end)},
        }
