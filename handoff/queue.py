"""The teams' queues of conversations waiting for a person: order, positions, wait estimates,
and the view every console and waiting customer is kept up to date with.

Each team has its own broker queue, only an index (priority first, then time) rebuilt from SQL
at start; the SQL compare-and-set decides who gets a conversation. The wait estimate is the
position times the team's average handling time (measured from its resolved handoffs once there
are three) divided by the team's agents online; with nobody online it is unknown, and the
customer is told so rather than given a number. The customer's chat line and the widget's bar
are both :func:`queue_line` of the same figures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from bot.core.clock import iso
from bot.core.frames import (
    CONSOLE_TOPIC,
    QUEUE,
    console_queue_frame,
    conversation_topic,
    queue_position_frame,
)
from bot.core.models import Agent, QueueRow, SlaClock
from bot.core.state import ConversationState
from bot.pipeline.context import Component, EngineContext

log = structlog.get_logger(__name__)

PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


def queue_score(priority: str, since: datetime) -> float:
    """Order in the queue: priority first, then who waited longest."""
    return PRIORITY_RANK.get(priority, 2) * 1e10 + since.timestamp()


def format_wait(seconds: float) -> str:
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def queue_line(position: int, eta: float | None) -> str:
    """What a waiting customer reads about their place, in the chat and in the widget's bar."""
    wait = (
        f"about {format_wait(eta)}"
        if eta is not None
        else "nobody from the team is online right now, so we can't estimate the wait"
    )
    return f"You're number {position} in the queue for a person ({wait})."


def works_for(agent: Agent, team: str | None, default_team: str) -> bool:
    """Whether the agent is one of the team's (an agent in no team works the default one)."""
    return team in agent.teams if agent.teams else team == default_team


def team_queue(team: str | None) -> str:
    """The broker queue of a team."""
    return f"{QUEUE}:{team or 'general'}"


class HandoffQueue(Component):
    """Waiting conversations, their positions and the queue views."""

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)

    async def enqueue(
        self, conversation_id: str, priority: str, since: datetime, team: str | None
    ) -> None:
        await self.broker.enqueue(team_queue(team), conversation_id, queue_score(priority, since))

    async def remove(self, conversation_id: str, team: str | None) -> None:
        await self.broker.remove(team_queue(team), conversation_id)

    async def items(self, team: str | None) -> list[str]:
        """A team's waiting conversations in queue order."""
        return await self.broker.queue_items(team_queue(team))

    def _teams(self) -> list[str]:
        return [team.name for team in self.settings.queue.teams]

    async def rebuild(self) -> int:
        """Put every QUEUED conversation (SQL is the truth) back into its team's queue: after
        an in-process broker restarts, or a crash between a handoff and its enqueue."""
        queued = await self.store.conversations_in_states([ConversationState.QUEUED])
        present = {item for team in self._teams() for item in await self.items(team)}
        added = 0
        for conversation in queued:
            if conversation.id in present:
                continue
            handoff = await self.store.current_handoff(conversation.id)
            since = handoff.requested_at if handoff else conversation.updated_at
            await self.enqueue(conversation.id, conversation.priority, since, conversation.team)
            added += 1
        if added:
            log.info("queue rebuilt", conversations=added)
        return added

    async def position(self, conversation_id: str) -> tuple[int, float | None]:
        """1-based position in the team's queue and the estimated wait in seconds (None:
        nobody of the team is online, so it cannot be known)."""
        conversation = await self.store.conversation(conversation_id)
        team = conversation.team if conversation else None
        position = await self.broker.position(team_queue(team), conversation_id) or 1
        per_position = await self._seconds_per_position(team)
        return position, None if per_position is None else position * per_position

    async def _seconds_per_position(self, team: str | None) -> float | None:
        rates = await self._per_position()
        # A team gateway.yml no longer has (renamed since): the default team's figure.
        return rates.get(team or "", rates.get(self.settings.queue.default_team))

    async def _per_position(self) -> dict[str, float | None]:
        """Each team's seconds of wait per place in its queue: its average handling time
        (measured once three of its handoffs were resolved) over its agents online; None
        when nobody of the team is online. Three reads for all the teams."""
        default = self.settings.queue.default_team
        durations: dict[str | None, list[float]] = {}
        for h in await self.store.recent_handoffs(200):
            if h.resolved_at and h.assigned_at:
                durations.setdefault(h.team, []).append(
                    (h.resolved_at - h.assigned_at).total_seconds()
                )
        present = set(await self.broker.present())
        online = [
            agent
            for agent in await self.store.agents()
            if agent.availability == "online" and f"agent:{agent.id}" in present
        ]
        rates: dict[str, float | None] = {}
        for name in self._teams():
            measured = durations.get(name, [])[:50]
            per_agent = (
                sum(measured) / len(measured)
                if len(measured) >= 3
                else self.settings.queue.average_handle_seconds
            )
            count = sum(1 for agent in online if works_for(agent, name, default))
            rates[name] = per_agent / count if count else None
        return rates

    async def broadcast(self) -> None:
        """Send the queue to every console and each waiting customer their new position."""
        await self.outbound.publish(CONSOLE_TOPIC, console_queue_frame(await self.snapshot()))
        rates = await self._per_position()
        for team in self._teams():
            per_position = rates[team]
            for position, conversation_id in enumerate(await self.items(team), start=1):
                eta = None if per_position is None else position * per_position
                await self.outbound.publish(
                    conversation_topic(conversation_id),
                    queue_position_frame(position, eta, queue_line(position, eta)),
                )

    async def snapshot(self) -> list[dict[str, Any]]:
        """The console's queue view: waiting conversations in queue order (follow-ups after
        them), then the assigned ones. One SQL query, however long the queue."""
        now = self.clock()
        rank: dict[str, int] = {}
        for team in self._teams():
            rank.update({cid: i for i, cid in enumerate(await self.items(team))})
        rows = await self.store.queue_rows(
            [
                ConversationState.QUEUED,
                ConversationState.PENDING_FOLLOWUP,
                ConversationState.ASSIGNED,
            ]
        )

        def order(row: QueueRow) -> tuple[int, float, int]:
            state = row.conversation.state
            if state is ConversationState.ASSIGNED:
                return (2, 0, 0)
            since = row.handoff_requested_at or row.conversation.updated_at
            return (
                0 if state is ConversationState.QUEUED else 1,
                queue_score(row.conversation.priority, since),
                rank.get(row.conversation.id, 1 << 30),
            )

        clocks: dict[str, SlaClock] = {}
        for clock in await self.store.running_clocks([row.conversation.id for row in rows]):
            nearest = clocks.get(clock.conversation_id)
            if nearest is None or clock.due_at < nearest.due_at:
                clocks[clock.conversation_id] = clock
        # sorted() is stable: conversations of equal rank keep their creation order.
        return [
            {**_queue_item(row, rank, now), **sla_view(clocks.get(row.conversation.id), now)}
            for row in sorted(rows, key=order)
        ]


def sla_view(clock: SlaClock | None, now: datetime) -> dict[str, Any]:
    """The nearest SLA deadline of a conversation, as the console shows it."""
    if clock is None:
        return {"sla": None}
    state = "breached" if clock.breached_at else "warning" if clock.warned_at else "ok"
    return {
        "sla": {
            "kind": clock.kind,
            "state": state,
            "due_at": iso(clock.due_at),
            "seconds_left": round((clock.due_at - now).total_seconds()),
        }
    }


def _queue_item(row: QueueRow, rank: dict[str, int], now: datetime) -> dict[str, Any]:
    conversation = row.conversation
    return {
        "conversation_id": conversation.id,
        "position": rank[conversation.id] + 1 if conversation.id in rank else None,
        "waiting_seconds": round((now - row.handoff_requested_at).total_seconds())
        if row.handoff_requested_at
        else 0,
        "priority": conversation.priority,
        "team": conversation.team,
        "reason_text": row.reason_text,
        "customer_name": row.customer_name or f"{conversation.channel} visitor",
        "channel": conversation.channel,
        "state": conversation.state.value,
        "assigned_agent_id": conversation.assigned_agent_id,
        "assigned_agent_name": (row.agent_name or "Another agent")
        if conversation.assigned_agent_id
        else None,
        "last_message": row.last_customer_text[:200] if row.last_customer_text else None,
    }
