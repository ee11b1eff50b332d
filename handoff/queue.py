"""The queue of conversations waiting for a person: order, positions, wait estimates, and the
view every console and waiting customer is kept up to date with.

The broker queue is only an index (priority first, then time), rebuilt from SQL at start; the
SQL compare-and-set decides who gets a conversation. The wait estimate is position times the
average handling time divided by the agents online, the average measured from resolved
handoffs once there are three.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from bot.core.frames import (
    CONSOLE_TOPIC,
    QUEUE,
    console_queue_frame,
    conversation_topic,
    queue_position_frame,
)
from bot.core.models import QueueRow
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


class HandoffQueue(Component):
    """Waiting conversations, their positions and the queue views."""

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)

    async def enqueue(self, conversation_id: str, priority: str, since: datetime) -> None:
        await self.broker.enqueue(QUEUE, conversation_id, queue_score(priority, since))

    async def remove(self, conversation_id: str) -> None:
        await self.broker.remove(QUEUE, conversation_id)

    async def rebuild(self) -> int:
        """Put every QUEUED conversation (SQL is the truth) back into the broker's queue: after
        an in-process broker restarts, or a crash between a handoff and its enqueue."""
        queued = await self.store.conversations_in_states([ConversationState.QUEUED])
        present = set(await self.broker.queue_items(QUEUE))
        added = 0
        for conversation in queued:
            if conversation.id in present:
                continue
            handoff = await self.store.current_handoff(conversation.id)
            since = handoff.requested_at if handoff else conversation.updated_at
            await self.enqueue(conversation.id, conversation.priority, since)
            added += 1
        if added:
            log.info("queue rebuilt", conversations=added)
        return added

    async def position(self, conversation_id: str) -> tuple[int, float]:
        """1-based position and estimated wait in seconds."""
        position = await self.broker.position(QUEUE, conversation_id) or 1
        return position, position * await self._seconds_per_position()

    async def _seconds_per_position(self) -> float:
        durations = [
            (h.resolved_at - h.assigned_at).total_seconds()
            for h in await self.store.recent_handoffs(50)
            if h.resolved_at and h.assigned_at
        ]
        per_agent = (
            sum(durations) / len(durations)
            if len(durations) >= 3
            else self.settings.queue.average_handle_seconds
        )
        agents = sum(1 for m in await self.broker.present() if m.startswith("agent:"))
        return per_agent / max(1, agents)

    async def broadcast(self) -> None:
        """Send the queue to every console and each waiting customer their new position."""
        await self.outbound.publish(CONSOLE_TOPIC, console_queue_frame(await self.snapshot()))
        per_position = await self._seconds_per_position()
        for position, conversation_id in enumerate(await self.broker.queue_items(QUEUE), start=1):
            await self.outbound.publish(
                conversation_topic(conversation_id),
                queue_position_frame(position, position * per_position),
            )

    async def snapshot(self) -> list[dict[str, Any]]:
        """The console's queue view: waiting conversations in queue order (follow-ups after
        them), then the assigned ones. One SQL query, however long the queue."""
        now = self.clock()
        ordered = await self.broker.queue_items(QUEUE)
        rank = {cid: i for i, cid in enumerate(ordered)}
        rows = await self.store.queue_rows(
            [
                ConversationState.QUEUED,
                ConversationState.PENDING_FOLLOWUP,
                ConversationState.ASSIGNED,
            ]
        )

        def order(row: QueueRow) -> tuple[int, int]:
            state = row.conversation.state
            if state is ConversationState.ASSIGNED:
                return (2, 0)
            return (
                0 if state is ConversationState.QUEUED else 1,
                rank.get(row.conversation.id, 1 << 30),
            )

        # sorted() is stable: conversations of equal rank keep their creation order.
        return [_queue_item(row, rank, now) for row in sorted(rows, key=order)]


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
