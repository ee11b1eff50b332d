"""What the gateway counts, for Prometheus (``GET /metrics``; docs/metrics.md).

One :class:`Metrics` per engine, on its own registry (tests run several gateways in one
process). Each replica exposes its own figures; Prometheus scrapes every replica and sums them.
The counters say how much happened; rates and ratios (containment, CSAT averages) are
computed in PromQL from them. The gauges (``csbot_queue_waiting`` and the rest) are read from the
shared record when Prometheus scrapes, so every replica reports the same values: aggregate
them with ``max``, not ``sum``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages_in = Counter(
            "csbot_customer_messages",
            "Customer messages stored, by channel",
            ["channel"],
            registry=r,
        )
        self.bot_turns = Counter(
            "csbot_bot_turns",
            "Customer messages the bot answered, by outcome",
            ["outcome"],
            registry=r,
        )
        self.rasa_seconds = Histogram(
            "csbot_rasa_turn_seconds",
            "Time Rasa took to answer one message (successful calls)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20),
            registry=r,
        )
        self.handoffs = Counter(
            "csbot_handoffs",
            "Conversations moved to people, by reason source and outcome",
            ["source", "state"],
            registry=r,
        )
        self.agent_replies = Counter(
            "csbot_agent_replies", "Messages agents sent to customers", registry=r
        )
        self.resolved = Counter(
            "csbot_resolved", "Conversations an agent resolved (back to the bot)", registry=r
        )
        self.ratings = Counter(
            "csbot_csat_ratings",
            "Customer ratings after a person helped, by score",
            ["score"],
            registry=r,
        )
        self.verified = Counter(
            "csbot_customers_verified", "Customers verified, by method", ["method"], registry=r
        )
        self.requeued = Counter(
            "csbot_followups_requeued", "Follow-ups moved to the queue at opening", registry=r
        )
        self.transfers = Counter(
            "csbot_transfers_to_team",
            "Conversations agents sent back to a team's queue",
            registry=r,
        )
        self.pushed = Counter(
            "csbot_pushed",
            "Conversations the gateway assigned to an agent (push teams)",
            registry=r,
        )

        self.handoff_reasons = Counter(
            "csbot_handoff_reasons",
            "Handoffs by reason (explicit_request, complaint, a keyword, the bot's reasons...)",
            ["reason"],
            registry=r,
        )
        self.deliveries = Counter(
            "csbot_outbox_deliveries",
            "Outbox delivery attempts to Telegram and Slack, by channel and outcome "
            "(delivered, retry, gave_up)",
            ["channel", "outcome"],
            registry=r,
        )
        self.sla_breaches = Counter(
            "csbot_sla_breaches",
            "Service-level targets missed, by team and clock (first_response, ...)",
            ["team", "kind"],
            registry=r,
        )
        # This replica's open sockets, read at each scrape (see set_sockets).
        self.sockets = Gauge(
            "csbot_websocket_connections",
            "Open websockets on this replica: customer (the widget) or console",
            ["kind"],
            registry=r,
        )
        # From the shared record at each scrape: aggregate with max.
        self.outbox_backlog = Gauge(
            "csbot_outbox_backlog",
            "Outbox items not delivered yet (waiting or being retried)",
            registry=r,
        )

        # Now, per team, from the shared record at each scrape (see set_live).
        self.waiting = Gauge(
            "csbot_queue_waiting", "Conversations waiting for a person", ["team"], registry=r
        )
        self.oldest_wait = Gauge(
            "csbot_queue_oldest_wait_seconds",
            "How long the longest-waiting conversation has waited (0 when none)",
            ["team"],
            registry=r,
        )
        self.agents_online = Gauge(
            "csbot_agents_online", "Agents online who work the team", ["team"], registry=r
        )
        self.sla_at_risk = Gauge(
            "csbot_sla_at_risk",
            "Conversations whose service-level clock has warned and not yet been met",
            ["team"],
            registry=r,
        )

    def set_live(self, by_team: dict[str, dict[str, float]]) -> None:
        """The live gauges, from ``{team: {"waiting", "oldest_wait_seconds", "agents_online",
        "at_risk"}}`` (every team, zeros included, so a drained queue reads 0)."""
        for team, values in by_team.items():
            self.waiting.labels(team).set(values["waiting"])
            self.oldest_wait.labels(team).set(values["oldest_wait_seconds"])
            self.agents_online.labels(team).set(values["agents_online"])
            self.sla_at_risk.labels(team).set(values["at_risk"])

    def set_sockets(self, customer: int, console: int) -> None:
        self.sockets.labels("customer").set(customer)
        self.sockets.labels("console").set(console)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
