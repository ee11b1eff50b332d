"""Which team gets a handoff, and which agent gets a conversation.

Routing (:func:`route`): the bot's signal names a known team: that team. Otherwise the first
rule of ``queue.routing`` in gateway.yml whose conditions all match (intent, product, language,
channel, VIP); otherwise the default team. A rule may also ask for skills and set a priority.

Assignment (:class:`Router`): a pull team's agents claim from its queue. For a push team the
gateway assigns: the queue's head (highest priority, then longest waiting) goes to the agent
who is online, has room under their capacity and the skills and language asked for, with the
fewest open conversations (ties: idle longest); never to a supervisor. A conversation no one
can take yet does not hold up the ones behind it. It drains whenever capacity may have freed
up (a handoff, a claim, a resolve, a transfer, an agent coming online) and on the scheduler's
sweep, one replica per team at a time (a broker lock); the compare-and-set on the
conversation decides every claim.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from bot.broker import LockTimeout
from bot.config import QueueSettings, RoutingRule, TeamSettings
from bot.core.errors import Conflict
from bot.core.models import Agent, Conversation
from bot.core.state import ConversationEvent, ConversationState, IllegalTransition
from bot.pipeline.context import Component, EngineContext
from handoff.queue import HandoffQueue, works_for

log = structlog.get_logger(__name__)

PRESENCE_PREFIX = "agent:"
_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Route:
    """Where a handoff goes: the team, the skills an agent needs, a priority the rule set."""

    team: str
    skills: tuple[str, ...] = ()
    priority: str | None = None
    rule: int | None = None  # index of the routing rule that matched, if one did


def _matches(rule: RoutingRule, facts: Mapping[str, Any]) -> bool:
    def within(allowed: Sequence[str], value: Any) -> bool:
        return not allowed or (isinstance(value, str) and value.lower() in allowed)

    return (
        within([i.lower() for i in rule.intents], facts.get("intent"))
        and within([p.lower() for p in rule.products], facts.get("product"))
        and within([x.lower() for x in rule.languages], facts.get("language"))
        and within([c.lower() for c in rule.channels], facts.get("channel"))
        and (rule.vip is None or rule.vip == bool(facts.get("vip")))
    )


def route(queue: QueueSettings, signal_team: object, facts: Mapping[str, Any]) -> Route:
    """The team for a handoff. ``facts``: intent, product, language, channel, vip."""
    if isinstance(signal_team, str) and queue.knows(signal_team):
        return Route(signal_team)
    if signal_team:
        log.warning("handoff signal names an unknown team", team=signal_team)
    for index, rule in enumerate(queue.routing):
        if _matches(rule, facts):
            return Route(rule.team, tuple(rule.skills), rule.priority, index)
    return Route(queue.default_team)


def availability(agent: Agent, present: set[str]) -> str:
    """What the agent is for routing: "offline" or "away" as they set it, and "away" too when
    none of their consoles has been seen for a while (their presence ran out)."""
    if agent.availability != "online":
        return agent.availability
    return "online" if f"{PRESENCE_PREFIX}{agent.id}" in present else "away"


@dataclass
class Candidate:
    agent: Agent
    open: int  # conversations assigned now

    @property
    def room(self) -> int:
        return self.agent.capacity - self.open


def can_take(candidate: Candidate, conversation: Conversation) -> bool:
    """Whether ``candidate`` has room and what the conversation needs."""
    agent = candidate.agent
    if candidate.room <= 0:
        return False
    if not set(conversation.required_skills or ()) <= set(agent.skills):
        return False
    language = conversation.language
    return not (language and agent.languages and language not in agent.languages)


def pick_agent(
    candidates: Iterable[Candidate], conversation: Conversation, last_agent: int | None = None
) -> Candidate | None:
    """The customer's last agent when they can take it; else the least busy candidate who
    can, ties going to the one idle longest."""
    able = [c for c in candidates if can_take(c, conversation)]
    if not able:
        return None
    for candidate in able:
        if candidate.agent.id == last_agent:
            return candidate
    return min(
        able,
        key=lambda c: (c.open, c.agent.last_assigned_at or _NEVER, c.agent.id),
    )


class Router(Component):
    """Assigns conversations: claims (pull) and pushes (push teams)."""

    def __init__(self, ctx: EngineContext, queue: HandoffQueue) -> None:
        super().__init__(ctx)
        self.queue = queue
        # Tells the customer and the consoles about a push (set by the composition root).
        self.on_assigned: Callable[[Conversation, Agent], Awaitable[None]] | None = None

    def team(self, name: str | None) -> TeamSettings:
        return self.settings.queue.team(name)

    async def team_members(self, team: str) -> list[tuple[Agent, str]]:
        """The team's agents with their availability for routing."""
        present = set(await self.broker.present())
        return [
            (agent, availability(agent, present))
            for agent in await self.store.agents()
            if works_for(agent, team, self.settings.queue.default_team)
        ]

    async def assign(self, conversation_id: str, agent: Agent) -> Conversation:
        """Give the conversation to ``agent`` (a claim, or the router's push): one
        compare-and-set decides; Conflict names whoever was faster."""
        conversation = await self.records.get(conversation_id)
        if conversation.state is ConversationState.QUEUED:
            # The queue entry is only an index; the compare-and-set below decides who wins
            # (an entry lost in a broker restart must not make the conversation unclaimable).
            await self.queue.remove(conversation_id, conversation.team)
        try:
            conversation = await self.records.transition(
                conversation_id, ConversationEvent.CLAIM, assigned_agent_id=agent.id
            )
        except IllegalTransition:
            current = await self.records.get(conversation_id)
            if current.state is ConversationState.ASSIGNED:
                who = await self.records.agent_name(current.assigned_agent_id)
                raise Conflict(f"{who} already took this conversation.") from None
            raise
        now = self.clock()
        await self.store.mark_assigned(agent.id, now)
        handoff = await self.store.current_handoff(conversation_id)
        if handoff is not None:
            await self.store.update_handoff(handoff.id, assigned_at=now, agent_id=agent.id)
        return conversation

    async def drain(self, teams: Iterable[str] | None = None) -> list[tuple[str, Agent]]:
        """Push waiting conversations of push teams to agents with room, queue order first;
        what was assigned, as (conversation id, agent)."""
        wanted = set(teams) if teams is not None else None
        assigned: list[tuple[str, Agent]] = []
        for team in self.settings.queue.teams:
            if team.assignment != "push" or (wanted is not None and team.name not in wanted):
                continue
            try:
                async with self.broker.lock(f"route:{team.name}", timeout=5, ttl=30):
                    assigned += await self._drain_team(team.name)
            except LockTimeout:
                log.warning("routing lock busy; the next sweep drains", team=team.name)
        return assigned

    async def _drain_team(self, team: str) -> list[tuple[str, Agent]]:
        waiting = await self.queue.items(team)
        if not waiting:
            return []
        loads = await self.store.open_assignments()
        candidates = [
            Candidate(agent, loads.get(agent.id, 0))
            for agent, status in await self.team_members(team)
            # Supervisors watch over the queues; the router does not hand them work.
            if status == "online" and agent.role != "supervisor"
        ]
        assigned: list[tuple[str, Agent]] = []
        for conversation_id in waiting:
            if not any(c.room > 0 for c in candidates):
                break
            try:
                conversation = await self.records.get(conversation_id)
            except Exception:
                continue
            if conversation.state is not ConversationState.QUEUED:
                await self.queue.remove(conversation_id, team)
                continue
            last_agent = await self.store.last_agent_of_customer(conversation.customer_id)
            chosen = pick_agent(candidates, conversation, last_agent)
            if chosen is None:
                continue  # nobody can take this one yet: it must not hold up the rest
            try:
                conversation = await self.assign(conversation_id, chosen.agent)
            except (Conflict, IllegalTransition):
                continue  # claimed meanwhile
            chosen.open += 1
            assigned.append((conversation_id, chosen.agent))
            self.metrics.pushed.inc()
            await self.store.audit(
                "router", "assign", conversation_id, {"agent": chosen.agent.id, "team": team}
            )
            if self.on_assigned is not None:
                await self.on_assigned(conversation, chosen.agent)
        return assigned
