"""Starting a handoff: pause the bot, build the packet, queue the conversation, tell everyone.

This is the ``HandoffDesk`` port the conversation pipeline calls (bot/core/ports.py) when a bot
turn, the gateway's policy or an agent's take-over moves a conversation to a person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import structlog

from bot.config import HoursSettings
from bot.core.clock import utcnow
from bot.core.hours import describe_opening, next_opening, open_now
from bot.core.identity import verified_as
from bot.core.models import Agent, Conversation
from bot.core.policy import HandoffDecision
from bot.core.state import ConversationEvent, ConversationState, IllegalTransition
from bot.pipeline.context import Component, EngineContext
from bot.rasa_client import RasaUnavailable
from bot.store import Store
from handoff.intents import CONVERSATIONAL_INTENTS, NOT_UNDERSTOOD
from handoff.packet import (
    CustomerInfo,
    HandoffPacket,
    LinkedIdentity,
    PastConversation,
    TranscriptEntry,
    build_packet,
)
from handoff.quality import QualityWatch
from handoff.queue import PRIORITY_RANK, HandoffQueue, queue_line
from handoff.routing import Router, route
from handoff.sla import SlaKeeper

log = structlog.get_logger(__name__)

# The payload of the chat line that says where a customer stands in the queue: the widget
# keeps that line up to date in place, with the same text as its queue bar.
QUEUE_STATUS = "queue_status"


MAX_HISTORY = 20

# What the customer is told when the gateway's own policy, not the bot, moved them to a person:
# without it they would only read where they stand in the queue, and not why.
WHY_A_PERSON = {
    "consecutive_fallbacks": "I haven't been able to understand your last few messages, so "
    "I'm bringing in a person from our team.",
    "low_confidence": "I'm not sure I've understood you correctly, so I'm bringing in a person "
    "from our team.",
    "explicit_request": "You asked for a person, so I'm bringing one in.",
    "intent:complaint": "I'm sorry about this. I'm bringing in a person from our team.",
}
KEYWORD_WHY = "This sounds like something a person should look at, so I'm bringing one in."


def why_a_person(reason: str) -> str:
    """The sentence that explains a handoff the gateway's policy decided ("" for the bot's own
    handoffs: the bot already said why)."""
    if reason.startswith("keyword:"):
        return KEYWORD_WHY + " "
    why = WHY_A_PERSON.get(reason)
    return why + " " if why else ""


def topic_intent(transcript: Sequence[TranscriptEntry]) -> str | None:
    """What the customer's problem was, as the bot understood it: their last intent that
    names a topic ("troubleshoot_sound", not the "affirm" of "yes, connect me"); else the
    last not-understood one (the bot could not tell); else None."""
    said = [e.intent for e in transcript if e.sender == "customer" and e.intent]
    topics = [i for i in said if i not in CONVERSATIONAL_INTENTS | NOT_UNDERSTOOD]
    if topics:
        return topics[-1]
    return next((i for i in reversed(said) if i in NOT_UNDERSTOOD), None)


async def _history(
    store: Store, conversation: Conversation, current_handoff_id: int | None
) -> list[PastConversation]:
    """The customer's earlier contacts, newest first: each earlier handoff (in this
    conversation too: a web chat or a Telegram chat goes on for months) with how it ended and
    its rating, and each other conversation that never reached a person."""
    names: dict[int, str] = {}

    async def agent_name(agent_id: int | None) -> str | None:
        if agent_id is None:
            return None
        if agent_id not in names:
            agent = await store.agent(agent_id)
            names[agent_id] = agent.display_name if agent else "another agent"
        return names[agent_id]

    entries: list[PastConversation] = []
    for other in await store.conversations_for_customer(conversation.customer_id):
        here = other.id == conversation.id
        handoffs = [
            h for h in await store.handoffs_for_conversation(other.id) if h.id != current_handoff_id
        ]
        if not handoffs and not here:
            entries.append(
                PastConversation(
                    conversation_id=other.id, started_at=other.created_at, state=other.state.value
                )
            )
            continue
        ratings = {r.handoff_id: r.rating for r in await store.csat_for(other.id)}
        for handoff in handoffs:
            entries.append(
                PastConversation(
                    conversation_id=other.id,
                    started_at=handoff.requested_at,
                    state=other.state.value,
                    reason=handoff.reason,
                    resolved_at=handoff.resolved_at,
                    agent=await agent_name(handoff.agent_id),
                    rating=ratings.get(handoff.id),
                    this_conversation=here,
                )
            )
    entries.sort(key=lambda e: e.started_at, reverse=True)
    return entries[:MAX_HISTORY]


async def customer_info(
    store: Store, conversation: Conversation, current_handoff_id: int | None = None
) -> CustomerInfo:
    """Who the customer is: name, channel identities, VIP, their earlier contacts (handoffs
    other than ``current_handoff_id``, with how they ended), and whom this conversation is
    verified as (bot/core/identity.py)."""
    customer = await store.customer(conversation.customer_id)
    identities = await store.identities(conversation.customer_id)
    own = next(
        (
            i
            for i in identities
            if (i.channel, i.channel_user_id)
            == (conversation.channel, conversation.channel_user_id)
        ),
        None,
    )
    verified = verified_as(
        conversation,
        customer.verified_id if customer else None,
        customer.verified_by if customer else None,
        utcnow(),
        own.linked_by if own else None,
    )
    past = await _history(store, conversation, current_handoff_id)
    return CustomerInfo(
        id=conversation.customer_id,
        display_name=customer.display_name if customer else None,
        channel=conversation.channel,
        channel_user_id=conversation.channel_user_id,
        # VIP status counts only for a customer who proved who they are, here.
        vip=bool(customer and customer.vip and verified and verified[0] == customer.verified_id),
        verified_id=verified[0] if verified else None,
        verified_by=cast(Any, verified[1]) if verified else None,
        linked_identities=[
            LinkedIdentity(channel=i.channel, channel_user_id=i.channel_user_id) for i in identities
        ],
        past_conversations=past,
    )


def offline_notice(hours: HoursSettings, now: datetime) -> str:
    """What a customer who asks for a person outside opening hours is told."""
    opens = next_opening(hours, now)
    when = (
        f"Our team opens again {describe_opening(opens, now)} ({hours.timezone} time)"
        if opens
        else "Our team is offline right now"
    )
    return (
        f"{when}. Your conversation is saved, and a person will reply here as soon as we're "
        "back. You can add anything else meanwhile."
    )


class HandoffStarter(Component):
    """Moves conversations to the human queue (or to a follow-up when the team is closed)."""

    def __init__(
        self,
        ctx: EngineContext,
        queue: HandoffQueue,
        router: Router,
        sla: SlaKeeper,
        quality: QualityWatch | None = None,
    ) -> None:
        super().__init__(ctx)
        self.queue, self.router, self.sla, self.quality = queue, router, sla, quality

    async def _keep_shop_facts(self, conversation: Conversation, facts: CustomerInfo) -> None:
        """The bot's signal brought the shop's name and VIP flag for the verified customer (a
        shop-signed visitor has only an id so far): keep them on the customer, so the console
        and later handoffs know them too."""
        if facts.verified_id is None or facts.verified_by is None:
            return
        stored = await self.store.customer(conversation.customer_id)
        if stored is None or stored.verified_id != facts.verified_id:
            return
        if stored.vip == facts.vip and (stored.display_name or not facts.display_name):
            return
        await self.store.verify_customer(
            stored.id,
            facts.verified_id,
            facts.verified_by,
            name=None if stored.display_name else facts.display_name,
            vip=facts.vip,
        )

    async def queue_position(self, conversation_id: str) -> tuple[int, float | None, str]:
        position, eta = await self.queue.position(conversation_id)
        return position, eta, queue_line(position, eta)

    async def sweep(self) -> None:
        """The scheduler's periodic call: follow-ups at opening, pushes that wait for an
        agent with room (a missed event, or a lock another replica held), SLA clocks due, and
        the quality alerts' look at the hour (at most every minute)."""
        await self.reopen()
        if await self.router.drain():
            await self.queue.broadcast()
        await self.sla.sweep()
        if self.quality is not None:
            await self.quality.sweep()

    async def customer_waiting(self, conversation: Conversation) -> None:
        """A customer wrote to a person: the next-response clock may start."""
        await self.sla.customer_waiting(conversation, self.clock())

    async def reopen(self) -> int:
        """The team is open: the follow-ups left outside hours join the queue, oldest handoff
        first (their waiting time counts from then), and each customer is told their place.
        Several replicas may run this at once: the compare-and-set lets one move each."""
        now = self.clock()
        waiting = []
        for conversation in await self.store.conversations_in_states(
            [ConversationState.PENDING_FOLLOWUP]
        ):
            if not open_now(self.settings.hours_of(conversation.team), now):
                continue
            handoff = await self.store.current_handoff(conversation.id)
            since = handoff.requested_at if handoff else conversation.updated_at
            waiting.append((since, conversation))
        moved: list[Conversation] = []
        for since, conversation in sorted(waiting, key=lambda item: item[0]):
            try:
                queued = await self.records.transition(
                    conversation.id, ConversationEvent.TEAM_OPENS
                )
            except IllegalTransition:
                continue  # claimed, or moved by another replica, meanwhile
            await self.queue.enqueue(queued.id, queued.priority, since, queued.team)
            await self.store.audit("system", "team_opens", queued.id)
            moved.append(queued)
        if not moved:
            return 0
        self.metrics.requeued.inc(len(moved))
        log.info("follow-ups queued at opening", count=len(moved))
        # Push teams hand them out at once; the rest learn their place.
        await self.router.drain({c.team for c in moved if c.team})
        for queued in moved:
            current = await self.records.get(queued.id)
            if current.state is not ConversationState.QUEUED:
                continue
            position, eta = await self.queue.position(queued.id)
            await self.outbound.system_message(
                current,
                f"We're open now. {queue_line(position, eta)} They'll see our conversation so far.",
                payload=QUEUE_STATUS,
            )
            await self.outbound.publish_state(current)
        await self.queue.broadcast()
        return len(moved)

    async def start(
        self,
        conversation: Conversation,
        decision: HandoffDecision,
        tracker: dict[str, Any] | None,
        source_agent: Agent | None = None,
    ) -> Conversation:
        # The bot's own handoff says why in its reply; the gateway's policy has to say it here.
        decided_by_policy = (
            decision.signal is None and decision.policy_reason is not None and source_agent is None
        )
        try:
            await self.rasa.pause(conversation.id)
        except RasaUnavailable as exc:
            # The gateway stops sending to the bot anyway; the pause only keeps Rasa quiet.
            log.warning("could not pause rasa", conversation_id=conversation.id, error=str(exc))
        now = self.clock()
        packet = build_packet(
            conversation_id=conversation.id,
            customer=await customer_info(self.store, conversation),
            messages=await self.store.messages(conversation.id),
            tracker=tracker,
            signal=decision.signal,
            policy_reason=decision.policy_reason,
            default_team=self.settings.queue.default_team,
            now=now,
        )
        chosen = route(
            self.settings.queue,
            (decision.signal or {}).get("team"),
            routing_facts(packet, conversation, tracker),
        )
        priority: str = packet.priority
        if chosen.priority and PRIORITY_RANK[chosen.priority] < PRIORITY_RANK[priority]:
            priority = chosen.priority  # a rule may raise the priority, never lower it
        packet = packet.model_copy(
            update={
                "team": chosen.team,
                "priority": priority,
                **({"source": "agent"} if source_agent is not None else {}),
            }
        )
        team_works = source_agent is not None or open_now(self.settings.hours_of(chosen.team), now)
        event = ConversationEvent.HANDOFF if team_works else ConversationEvent.NO_AGENT
        await self._keep_shop_facts(conversation, packet.customer)
        conversation = await self.records.transition(
            conversation.id,
            event,
            team=packet.team,
            priority=packet.priority,
            handoff_due=None,
            language=routing_language(tracker),
            required_skills=list(chosen.skills) or None,
        )
        handoff = await self.store.create_handoff(
            conversation.id,
            packet.model_dump(mode="json"),
            packet.reason,
            packet.team,
            packet.priority,
            intent=topic_intent(packet.transcript),
        )
        await self.sla.handed_off(conversation, handoff, now)
        self.metrics.handoffs.labels(packet.source, conversation.state.value).inc()
        self.metrics.handoff_reasons.labels(packet.reason).inc()
        await self.store.audit(
            f"agent:{source_agent.id}" if source_agent else "bot",
            "handoff",
            conversation.id,
            {
                "reason": packet.reason,
                "state": conversation.state.value,
                "handoff": handoff.id,
                "team": packet.team,
                "rule": chosen.rule,
            },
        )
        log.info(
            "handoff",
            conversation_id=conversation.id,
            reason=packet.reason,
            team=packet.team,
            priority=packet.priority,
            state=conversation.state.value,
        )
        if conversation.state is ConversationState.QUEUED:
            await self.queue.enqueue(conversation.id, packet.priority, now, packet.team)
            if source_agent is None:
                await self.router.drain([packet.team])
                conversation = await self.records.get(conversation.id)
            if conversation.state is ConversationState.QUEUED and source_agent is None:
                position, eta = await self.queue.position(conversation.id)
                await self.outbound.system_message(
                    conversation,
                    f"{why_a_person(packet.reason) if decided_by_policy else ''}"
                    f"{queue_line(position, eta)} They'll see our conversation so far, so "
                    "you won't need to repeat anything. You can keep typing here meanwhile.",
                    payload=QUEUE_STATUS,
                )
        else:
            await self.outbound.system_message(
                conversation,
                f"{why_a_person(packet.reason) if decided_by_policy else ''}"
                + offline_notice(self.settings.hours_of(packet.team), now),
            )
        await self.outbound.publish_state(conversation)
        await self.queue.broadcast()
        return conversation


def routing_language(tracker: Mapping[str, Any] | None) -> str | None:
    """The customer's language, when the bot knows it (a ``language`` slot)."""
    slots = (tracker or {}).get("slots")
    value = slots.get("language") if isinstance(slots, Mapping) else None
    return value.lower()[:16] if isinstance(value, str) and value else None


def routing_facts(
    packet: HandoffPacket, conversation: Conversation, tracker: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What routing rules can match on."""
    intent = next(
        (e.intent for e in reversed(packet.transcript) if e.sender == "customer" and e.intent),
        None,
    )
    product = packet.facts.get("product") or packet.slots.get("product")
    return {
        "intent": intent,
        "product": product if isinstance(product, str) else None,
        "language": routing_language(tracker),
        "channel": conversation.channel,
        "vip": packet.customer.vip,
    }
