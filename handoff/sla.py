"""Service levels: SLA clocks, their warnings and breaches, and the escalation tiers.

A handoff starts two clocks, first response and resolution; a customer message that waits for
an agent after the first reply starts the next-response clock, and the agent's reply stops it.
Targets come from the first matching ``sla:`` policy in gateway.yml and count in the team's
opening hours (``business_hours``) or around the clock. Each clock is stored with its
deadlines (bot/store/sla.py), so a restart or another replica sees the same ones.

The sweep (the scheduler calls it every few seconds on every replica) reads only the clocks
with something due and marks each warning and breach with a compare-and-set: exactly one
replica acts on it. What it does is the policy's ``on_warning`` / ``on_breach``:

* ``notify``: every console shows it (a ``sla`` frame); always in the audit log too;
* ``raise_priority``: one step up (low → normal → high → urgent), which moves it up its queue;
* ``escalate``: a waiting conversation moves to the next tier's queue (``escalate_to`` of the
  team: front line → experts → supervisors) and its clock restarts on that team's target; an
  assigned one stays with its agent, and the next tier is notified.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog

from bot.config import HoursSettings, SlaPolicy
from bot.core.clock import iso
from bot.core.frames import CONSOLE_TOPIC
from bot.core.hours import add_open_time
from bot.core.models import Conversation, Handoff, SlaClock
from bot.core.state import ConversationState
from bot.pipeline.context import Component, EngineContext
from handoff.queue import HandoffQueue
from handoff.routing import Router

log = structlog.get_logger(__name__)

FIRST, NEXT, RESOLUTION = "first_response", "next_response", "resolution"
KIND_TEXT = {FIRST: "first response", NEXT: "next response", RESOLUTION: "resolution"}
_RAISED = {"low": "normal", "normal": "high", "high": "urgent", "urgent": "urgent"}


def _target(policy: SlaPolicy, kind: str) -> float | None:
    minutes = {
        FIRST: policy.first_response_minutes,
        NEXT: policy.next_response_minutes,
        RESOLUTION: policy.resolution_minutes,
    }[kind]
    return minutes * 60 if minutes else None


def deadlines(
    policy: SlaPolicy, hours: HoursSettings, kind: str, start: datetime
) -> tuple[datetime, datetime] | None:
    """When the clock of ``kind`` started at ``start`` warns and breaches; None: no target."""
    seconds = _target(policy, kind)
    if seconds is None:
        return None
    if policy.business_hours:
        return (
            add_open_time(hours, start, seconds * policy.warn_at),
            add_open_time(hours, start, seconds),
        )
    return start + timedelta(seconds=seconds * policy.warn_at), start + timedelta(seconds=seconds)


class SlaKeeper(Component):
    """Starts and stops the clocks; the sweep acts on warnings and breaches."""

    def __init__(self, ctx: EngineContext, queue: HandoffQueue, router: Router) -> None:
        super().__init__(ctx)
        self.queue, self.router = queue, router

    async def _start(
        self, conversation: Conversation, handoff_id: int, kind: str, start: datetime
    ) -> SlaClock | None:
        team = conversation.team or self.settings.queue.default_team
        policy = self.settings.sla_policy(team, conversation.priority)
        due = deadlines(policy, self.settings.hours_of(team), kind, start) if policy else None
        if due is None:
            return None
        return await self.store.start_clock(
            conversation.id, handoff_id, kind, team, start, due[0], due[1]
        )

    async def handed_off(self, conversation: Conversation, handoff: Handoff, at: datetime) -> None:
        """A handoff at ``at``: its first-response and resolution clocks start."""
        for kind in (FIRST, RESOLUTION):
            await self._start(conversation, handoff.id, kind, at)

    async def agent_replied(self, handoff: Handoff, at: datetime) -> None:
        await self.store.stop_clocks(handoff.id, (FIRST, NEXT), at)

    async def customer_waiting(self, conversation: Conversation, at: datetime) -> None:
        """A customer message for a person: after the first reply, it waits for the next one
        (a clock already running keeps its earlier start)."""
        handoff = await self.store.current_handoff(conversation.id)
        if handoff is None or handoff.first_agent_reply_at is None:
            return  # the first-response clock covers it
        running = await self.store.clock(handoff.id, NEXT)
        if running is not None and running.stopped_at is None:
            return
        await self._start(conversation, handoff.id, NEXT, at)

    async def resolved(self, handoff: Handoff, at: datetime) -> None:
        await self.store.stop_clocks(handoff.id, (FIRST, NEXT, RESOLUTION), at)

    # --- the sweep -------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Act on every warning and breach due now; how many this replica acted on."""
        now = self.clock()
        acted = 0
        for clock in await self.store.due_clocks(now):
            if clock.warned_at is None and now < clock.due_at:
                level = "warning"
                won = await self.store.mark_clock(clock, warned_at=now, next_check_at=clock.due_at)
            else:
                level = "breach"
                won = await self.store.mark_clock(
                    clock, warned_at=clock.warned_at or now, breached_at=now, next_check_at=None
                )
            if not won:
                continue  # another replica acted on it
            acted += 1
            if level == "breach":
                self.metrics.sla_breaches.labels(clock.team, clock.kind).inc()
            try:
                await self._act(clock, level, now)
            except Exception:
                log.exception("SLA action failed", clock=clock.id, level=level)
        if acted:
            await self.queue.broadcast()
        return acted

    async def _act(self, clock: SlaClock, level: str, now: datetime) -> None:
        conversation = await self.store.conversation(clock.conversation_id)
        if conversation is None:
            return
        # The policy that started the clock may no longer match (the priority was raised):
        # then only the consoles are told.
        policy = self.settings.sla_policy(clock.team, conversation.priority) or SlaPolicy(
            on_warning=["notify"], on_breach=["notify"]
        )
        actions = policy.on_warning if level == "warning" else policy.on_breach
        details: dict[str, Any] = {
            "kind": clock.kind,
            "team": clock.team,
            "due_at": iso(clock.due_at),
            "actions": list(actions),
        }
        log.info("SLA " + level, conversation_id=conversation.id, **details)
        if "raise_priority" in actions:
            conversation = await self._raise_priority(conversation)
            details["priority"] = conversation.priority
        if level == "breach" and "escalate" in actions:
            details["escalated_to"] = await self._escalate(conversation, clock, now)
        await self.store.audit("sla", f"sla_{level}", conversation.id, details)
        if "notify" in actions:
            await self.outbound.publish(
                CONSOLE_TOPIC,
                {
                    "type": "sla",
                    "level": level,
                    "conversation_id": conversation.id,
                    "kind": clock.kind,
                    "team": clock.team,
                    "escalated_to": details.get("escalated_to"),
                    "text": _notice(level, clock, self.settings.queue.team(clock.team).title),
                },
            )

    async def _raise_priority(self, conversation: Conversation) -> Conversation:
        raised = _RAISED.get(conversation.priority, "high")
        if raised == conversation.priority:
            return conversation
        conversation = await self.records.update(conversation.id, priority=raised)
        handoff = await self.store.current_handoff(conversation.id)
        if handoff is not None:
            await self.store.update_handoff(handoff.id, priority=raised)
        if conversation.state is ConversationState.QUEUED:
            since = handoff.requested_at if handoff else conversation.updated_at
            await self.queue.enqueue(conversation.id, raised, since, conversation.team)
        return conversation

    async def _escalate(
        self, conversation: Conversation, clock: SlaClock, now: datetime
    ) -> str | None:
        """Up one tier: a waiting conversation moves to the next team's queue; an assigned
        one stays with its agent (the next tier is told)."""
        tier = self.settings.queue.team(clock.team).escalate_to
        if tier is None:
            return None
        if conversation.state is not ConversationState.QUEUED or conversation.team != clock.team:
            return tier
        handoff = await self.store.current_handoff(conversation.id)
        since = handoff.requested_at if handoff else conversation.updated_at
        moved = await self.records.update(conversation.id, team=tier)
        await self.queue.remove(conversation.id, clock.team)
        await self.queue.enqueue(moved.id, moved.priority, since, tier)
        if handoff is not None:
            await self.store.update_handoff(handoff.id, team=tier)
            # The next tier gets its own target for what is still missing, from now.
            await self._start(moved, handoff.id, clock.kind, now)
        await self.router.drain([tier])  # the sweep broadcasts once, at its end
        return tier


def _notice(level: str, clock: SlaClock, team: str) -> str:
    what = KIND_TEXT.get(clock.kind, clock.kind)
    if level == "warning":
        return f"{team}: the {what} target is close ({clock.due_at:%H:%M} UTC)."
    return f"{team}: the {what} target was missed."
