"""Quality alerts: many more customers than usual write about one problem in one hour.

A problem is the customers' topic as the bot read it (the intent of their messages; "yes",
"hello" and "a person please" name none; ``nlu_fallback`` counts: a burst of messages the bot
cannot read is often a new problem). Contacts are conversations, not messages: one customer
writing five times is one contact.

The rule (docs/metrics.md): in the current clock hour, a problem with at least
``quality_alerts.min_contacts`` contacts raises an alert when a Poisson count whose mean is the
problem's own baseline for that hour of the day (its contacts in the same hour on each of the
last ``baseline_days`` days, averaged; at least ``MIN_BASELINE``) reaches that many with
probability at most ``quality_alerts.p_value``. Comparing an hour with the same hour on other
days keeps the daily peaks (Monday 9 am) from looking like spikes.
One alert per problem and hour (the database's unique key: replicas that notice it at once
store it once). It is shown on the dashboard until a supervisor acknowledges it (audited), and
posted to a Slack channel through the outbox when one is configured.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import structlog

from bot.core.errors import Forbidden, NotFound
from bot.core.frames import CONSOLE_TOPIC
from bot.core.models import Agent, QualityAlert
from bot.core.types import SenderKind
from bot.pipeline.context import Component, EngineContext
from handoff.intents import CONVERSATIONAL_INTENTS

log = structlog.get_logger(__name__)

# The smallest hourly mean used: a problem never seen before needs min_contacts at once.
MIN_BASELINE = 0.05
ALERTS_SHOWN_DAYS = 7


def poisson_tail(k: int, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(mean)."""
    if k <= 0:
        return 1.0
    term = math.exp(-mean)  # P(X = 0)
    below = term
    for i in range(1, k):
        term *= mean / i
        below += term
    return max(0.0, 1.0 - below)


def alert_dict(alert: QualityAlert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "problem": alert.problem,
        "hour": alert.hour.isoformat(),
        "contacts": alert.contacts,
        "baseline_per_hour": alert.baseline,
        "p_value": alert.p_value,
        "created_at": alert.created_at.isoformat(),
        "acknowledged": alert.acknowledged_at is not None,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "acknowledged_by": alert.acknowledged_by,
    }


class QualityWatch(Component):
    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self._checked_at: datetime | None = None
        # The baseline of the hour being watched, read once per hour: (hour, per problem).
        self._baseline: tuple[datetime, dict[str, int]] | None = None

    async def sweep(self) -> None:
        """The scheduler's periodic call: look at most every ``check_every_seconds``."""
        config = self.settings.quality_alerts
        now = self.clock()
        if not config.enabled:
            return
        if (
            self._checked_at
            and (now - self._checked_at).total_seconds() < config.check_every_seconds
        ):
            return
        self._checked_at = now
        await self.check(now)

    async def check(self, now: datetime) -> list[QualityAlert]:
        """The alerts the current hour raises now (each new one is announced)."""
        config = self.settings.quality_alerts
        hour = now.replace(minute=0, second=0, microsecond=0)
        counts = await self.store.contacts_per_problem(hour, now, CONVERSATIONAL_INTENTS)
        busy = {p: n for p, n in counts.items() if n >= config.min_contacts}
        if not busy:
            return []
        before = await self._baseline_of(hour)
        days = config.baseline_days
        raised = []
        for problem, contacts in sorted(busy.items()):
            mean = max(before.get(problem, 0) / days, MIN_BASELINE)
            p = poisson_tail(contacts, mean)
            if p > config.p_value:
                continue
            alert = await self.store.add_quality_alert(
                QualityAlert(0, problem, hour, contacts, round(mean, 4), p, now)
            )
            if alert is not None:  # not stored before, by this replica or another
                raised.append(alert)
                await self._announce(alert)
        return raised

    async def _baseline_of(self, hour: datetime) -> dict[str, int]:
        """Contacts per problem in the same hour of each of the last ``baseline_days`` days."""
        if self._baseline is None or self._baseline[0] != hour:
            days = self.settings.quality_alerts.baseline_days
            windows = [
                (hour - timedelta(days=d), hour - timedelta(days=d) + timedelta(hours=1))
                for d in range(1, days + 1)
            ]
            counts = await self.store.contacts_per_problem_in(windows, CONVERSATIONAL_INTENTS)
            self._baseline = (hour, counts)
        return self._baseline[1]

    async def _announce(self, alert: QualityAlert) -> None:
        await self.store.audit("system", "quality_alert", details=alert_dict(alert))
        log.warning(
            "quality alert", problem=alert.problem, contacts=alert.contacts, mean=alert.baseline
        )
        await self.outbound.publish(CONSOLE_TOPIC, {"type": "quality_alert", **alert_dict(alert)})
        channel = self.settings.quality_alerts.slack_channel
        if channel and self.settings.channels.slack.enabled:
            conversation = await self._alerts_conversation(channel)
            await self.outbound.send(
                conversation,
                SenderKind.SYSTEM,
                f":rotating_light: Quality alert: {alert.contacts} customers wrote about "
                f"*{alert.problem}* since {alert.hour:%H:%M} UTC (usually "
                f"{alert.baseline:.2f} an hour). Acknowledge it on the dashboard.",
                payload="quality_alert",
            )

    async def _alerts_conversation(self, channel: str) -> Any:
        """The conversation whose messages go to the alerts channel (through the outbox)."""
        customer = await self.store.find_or_create_customer("slack", channel, "Quality alerts")
        return await self.store.open_conversation(customer.id, "slack", channel)

    async def recent(self) -> list[dict[str, Any]]:
        since = self.clock() - timedelta(days=ALERTS_SHOWN_DAYS)
        return [alert_dict(a) for a in await self.store.quality_alerts(since)]

    async def acknowledge(self, agent: Agent, alert_id: int) -> dict[str, Any]:
        if agent.role != "supervisor":
            raise Forbidden("Only supervisors can acknowledge quality alerts.")
        alert = await self.store.acknowledge_quality_alert(alert_id, agent.id, self.clock())
        if alert is None:
            raise NotFound(f"no quality alert {alert_id}")
        await self.store.audit(
            f"agent:{agent.id}", "quality_alert_acknowledged", details={"alert_id": alert_id}
        )
        await self.outbound.publish(CONSOLE_TOPIC, {"type": "quality_alert", **alert_dict(alert)})
        return alert_dict(alert)
