"""What the gateway counts, for Prometheus (``GET /metrics``; docs/metrics.md).

One :class:`Metrics` per engine, on its own registry (tests run several gateways in one
process). Each replica exposes its own figures; Prometheus scrapes every replica and sums them.
The counters say how much happened; rates and ratios (containment, CSAT averages) are
computed in PromQL from them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
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

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
