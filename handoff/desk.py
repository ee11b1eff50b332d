"""The agent's desk: what agents do with conversations (take over, claim, reply, note, transfer,
resolve) and the views the console reads. The console reaches data only through this class.

Every state change is a compare-and-set through ``Records.transition``; two agents claiming at
once get exactly one winner. Resolve hands the conversation back to the bot in the same update
(ASSIGNED → RESOLVED → BOT) and asks the customer for a rating.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from bot.broker import Subscription
from bot.core.clock import iso
from bot.core.errors import BadMessage, Conflict, Forbidden, NotFound
from bot.core.frames import (
    CONSOLE_TOPIC,
    agent_joined_frame,
    console_note_frame,
    conversation_topic,
    note_dict,
)
from bot.core.models import Agent, Conversation, Handoff, InboxFilter, Note
from bot.core.policy import HandoffDecision
from bot.core.state import ConversationEvent, ConversationState
from bot.core.types import Button, Direction, SenderKind, StoredMessage, is_text
from bot.pipeline.context import Component, EngineContext
from bot.rasa_client import RasaUnavailable
from bot.store.agents import AVAILABILITY
from handoff.canned import CannedReplies
from handoff.customers import CustomerProfiles
from handoff.queue import HandoffQueue, queue_line
from handoff.reports import Dashboard
from handoff.routing import Router, availability
from handoff.start import QUEUE_STATUS, HandoffStarter, customer_info
from handoff.training import ExportError, domain_intents, export_training, since_start

log = structlog.get_logger(__name__)


class AgentDesk(Component):
    """Agent actions and console read models."""

    def __init__(
        self,
        ctx: EngineContext,
        queue: HandoffQueue,
        starter: HandoffStarter,
        router: Router,
        dashboard: Dashboard,
    ) -> None:
        super().__init__(ctx)
        self.queue, self.starter, self.router = queue, starter, router
        self.dashboard = dashboard
        self.canned = CannedReplies(self.store, self.settings)
        self.customers = CustomerProfiles(self.store, self.settings, self.rasa)

    async def take_over(self, conversation_id: str, agent: Agent) -> Conversation:
        """An agent takes a live bot conversation: the bot stops, the agent is assigned."""
        conversation = await self.records.get(conversation_id)
        if conversation.state is not ConversationState.BOT:
            raise Conflict("Only a conversation that is with the bot can be taken over.")
        try:
            tracker: dict[str, Any] | None = await self.rasa.tracker(conversation_id)
        except RasaUnavailable:
            tracker = None
        await self.starter.start(
            conversation, HandoffDecision(policy_reason="agent_takeover"), tracker, agent
        )
        return await self.claim(conversation_id, agent)

    async def claim(self, conversation_id: str, agent: Agent) -> Conversation:
        conversation = await self.router.assign(conversation_id, agent)
        await self.store.audit(f"agent:{agent.id}", "claim", conversation_id)
        await self._agent_joined(conversation, agent, self._joined_notice(conversation, agent))
        return conversation

    async def agent_reply(self, conversation_id: str, agent: Agent, text: str) -> StoredMessage:
        text = agent_text(text, "reply", self.settings.limits.max_message_chars)
        conversation = await self.records.get(conversation_id)
        _check_assignee(conversation, agent)
        message = await self.outbound.send(
            conversation, SenderKind.AGENT, text, sender_name=agent.display_name
        )
        return await self._agent_sent(conversation_id, message)

    async def agent_file(
        self, conversation_id: str, agent: Agent, data: bytes, name: str | None, caption: str = ""
    ) -> StoredMessage:
        """Send the customer a picture or file (with an optional caption). Checked before
        anything is stored: who may send, the caption, then the file itself (FileRefused)."""
        caption = caption.strip()
        if caption:
            caption = agent_text(caption, "caption", self.settings.limits.max_message_chars)
        conversation = await self.records.get(conversation_id)
        _check_assignee(conversation, agent)
        attachment = await self.files.save(data, name, "agent")
        message = await self.outbound.send(
            conversation,
            SenderKind.AGENT,
            caption,
            sender_name=agent.display_name,
            attachment=attachment,
        )
        return await self._agent_sent(conversation_id, message)

    async def _agent_sent(self, conversation_id: str, message: StoredMessage) -> StoredMessage:
        """Bookkeeping after an agent's message: the metric, first response, SLA clocks."""
        self.metrics.agent_replies.inc()
        handoff = await self.store.current_handoff(conversation_id)
        if handoff is not None:
            if handoff.first_agent_reply_at is None:
                await self.store.update_handoff(handoff.id, first_agent_reply_at=message.created_at)
            await self.starter.sla.agent_replied(handoff, self.clock())
        return message

    async def mark_read(self, conversation_id: str, agent: Agent, seq: object) -> None:
        """The agent has seen the conversation up to message ``seq`` (the console says so while
        the conversation is open and visible)."""
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**31:
            raise BadMessage("bad_request", "seq must be a message's sequence number.")
        await self.records.get(conversation_id)
        await self.store.mark_read(agent.id, conversation_id, seq)

    async def unread(self, agent: Agent) -> dict[str, int]:
        """Per conversation assigned to the agent: customer messages they have not seen."""
        return await self.store.unread_counts(agent.id)

    async def export_training(self, agent: Agent, since: str, part: str) -> tuple[str, str]:
        """The designers' export for a supervisor: (file name, YAML) of ``part`` ("nlu" or
        "stories") over the last ``since`` (24h, 7d, 2w)."""
        if agent.role != "supervisor":
            raise Forbidden("Only supervisors can download the training export.")
        if part not in ("nlu", "stories"):
            raise BadMessage("bad_request", "part must be nlu or stories.")
        metrics = self.settings.metrics
        now = self.clock()
        try:
            start = since_start(since, now)
            intents = domain_intents(Path(metrics.domain_file))
        except ExportError as exc:
            raise BadMessage("bad_request", str(exc)) from None
        export = await export_training(
            self.store,
            start=start,
            end=now,
            intents=intents,
            low_confidence=metrics.low_confidence,
            command=f"the console's download (since {since})",
        )
        if part == "nlu":
            return f"nlu-{now:%Y-%m-%d}.yml", export.nlu
        return f"test_stories-{now:%Y-%m-%d}.yml", export.stories

    async def agent_typing(self, conversation_id: str, agent: Agent) -> None:
        """The agent is writing a reply: the customer sees "Sam is typing…" (the console says
        so at most every few seconds while the agent types)."""
        conversation = await self.records.get(conversation_id)
        _check_assignee(conversation, agent)
        await self.outbound.typing(conversation, "agent")

    async def add_note(self, conversation_id: str, agent: Agent, text: str) -> Note:
        text = agent_text(text, "note", self.settings.limits.max_message_chars)
        await self.records.get(conversation_id)
        note = await self.store.add_note(conversation_id, agent.id, text)
        await self.outbound.publish(CONSOLE_TOPIC, console_note_frame(conversation_id, note))
        return note

    async def transfer(self, conversation_id: str, agent: Agent, to_agent_id: int) -> Conversation:
        conversation = await self.records.get(conversation_id)
        _check_assignee(conversation, agent)
        target = await self.store.agent(to_agent_id)
        if target is None:
            raise NotFound(f"unknown agent {to_agent_id}")
        # Taking it over oneself (a supervisor) needs no check: the request is the proof.
        if target.id != agent.id:
            status = availability(target, set(await self.broker.present()))
            if status != "online":
                raise Conflict(
                    f"{target.display_name} is {status}, so the customer would wait for "
                    "nobody. Choose someone who is online, or send it to a team's queue."
                )
        previous = await self.records.agent_name(conversation.assigned_agent_id)

        def still_allowed(current: Conversation) -> None:
            _check_assignee(current, agent)
            if target.id == current.assigned_agent_id:
                raise Conflict(f"{target.display_name} already has this conversation.")

        conversation = await self.records.transition(
            conversation_id,
            ConversationEvent.TRANSFER,
            check=still_allowed,
            assigned_agent_id=target.id,
        )
        await self.store.mark_assigned(target.id, self.clock())
        await self._handoff_changes(conversation_id, agent_id=target.id)
        await self.store.audit(
            f"agent:{agent.id}", "transfer", conversation_id, {"to_agent": target.id}
        )
        # "From" the person the customer was talking to, who may not be the one transferring
        # (a supervisor moving a colleague's conversation).
        await self._agent_joined(
            conversation, target, f"{target.display_name} is taking over from {previous}."
        )
        if await self.router.drain([conversation.team] if conversation.team else None):
            await self.queue.broadcast()
        return conversation

    async def transfer_to_team(
        self, conversation_id: str, agent: Agent, team: str | None
    ) -> Conversation:
        """Back into a queue: ``team``'s (None: the conversation's own team). It keeps its
        place in time (it waits from its handoff, not from now), and a push team assigns it
        at once when someone has room."""
        conversation = await self.records.get(conversation_id)
        _check_assignee(conversation, agent)
        if team is not None and not self.settings.queue.knows(team):
            raise NotFound(f"unknown team {team}")
        target = self.settings.queue.team(team or conversation.team)
        conversation = await self.records.transition(
            conversation_id,
            ConversationEvent.REQUEUE,
            check=lambda current: _check_assignee(current, agent),
            assigned_agent_id=None,
            team=target.name,
        )
        handoff = await self.store.current_handoff(conversation_id)
        since = handoff.requested_at if handoff else self.clock()
        if handoff is not None:
            await self.store.update_handoff(handoff.id, team=target.name)
        await self.queue.enqueue(conversation_id, conversation.priority, since, target.name)
        await self.store.audit(
            f"agent:{agent.id}", "transfer", conversation_id, {"to_team": target.name}
        )
        self.metrics.transfers.inc()
        await self.router.drain([target.name])
        current = await self.records.get(conversation_id)
        if current.state is ConversationState.QUEUED:
            position, eta = await self.queue.position(conversation_id)
            await self.outbound.system_message(
                current,
                f"I've passed you to {target.title}, who will see our conversation so far. "
                + queue_line(position, eta),
                payload=QUEUE_STATUS,
            )
            await self.outbound.publish_state(current)
        await self.queue.broadcast()
        return current

    def wrapup_choices(self, handoff: Handoff | None) -> dict[str, Any]:
        """What the resolve form offers: the dispositions, with the one the bot's last
        understood intent suggests preselected."""
        queue = self.settings.queue
        return {
            "dispositions": [{"name": d.name, "title": d.title} for d in queue.dispositions],
            "suggested": queue.disposition_for(handoff.intent if handoff else None),
        }

    async def resolve(
        self,
        conversation_id: str,
        agent: Agent,
        disposition: object = None,
        bot_should_have_handled: object = False,
    ) -> Conversation:
        """Close the human part: the bot resumes (slots kept) and asks for a rating. The
        wrap-up is kept on the handoff: ``disposition`` (one of queue.dispositions; None: the
        one the bot's intent suggests) and whether the bot should have handled it."""
        queue = self.settings.queue
        if disposition is not None and (
            not isinstance(disposition, str)
            or disposition not in {d.name for d in queue.dispositions}
        ):
            names = ", ".join(d.name for d in queue.dispositions)
            raise BadMessage("bad_request", f"disposition must be one of: {names}.")
        if not isinstance(bot_should_have_handled, bool):
            raise BadMessage("bad_request", "bot_should_have_handled must be true or false.")
        conversation = await self.records.get(conversation_id)
        _check_assignee(conversation, agent)
        # What the customer wrote while a person had the conversation was for that person:
        # the bot's cursor moves past it in the same update that hands the conversation back.
        stored = await self.store.messages(conversation_id)
        last_inbound = max((m.seq for m in stored if m.direction is Direction.INBOUND), default=0)
        # resolve + return_to_bot in ONE compare-and-set: no window in which a crash or a
        # customer message finds the conversation RESOLVED.
        conversation = await self.records.transition(
            conversation_id,
            ConversationEvent.RESOLVE,
            ConversationEvent.RETURN_TO_BOT,
            check=lambda current: _check_assignee(current, agent),
            assigned_agent_id=None,
            awaiting_csat=True,
            awaiting_survey=None,
            bot_cursor=last_inbound,
        )
        handoff = await self.store.current_handoff(conversation_id)
        if handoff is not None:
            await self.store.update_handoff(
                handoff.id,
                resolved_at=self.clock(),
                disposition=disposition or queue.disposition_for(handoff.intent),
                bot_should_have_handled=bot_should_have_handled,
            )
            await self.starter.sla.resolved(handoff, self.clock())
        await self.store.audit(f"agent:{agent.id}", "resolve", conversation_id)
        try:
            await self.rasa.resume(conversation.id)
        except RasaUnavailable as exc:
            # The next bot turn sees the paused tracker and resumes it then.
            log.warning("could not resume rasa", conversation_id=conversation.id, error=str(exc))
        await self.outbound.send(
            conversation,
            SenderKind.SYSTEM,
            self.settings.csat_prompt,
            buttons=[Button(title=str(n), payload=f"csat:{n}") for n in range(1, 6)],
            payload="csat_request",
        )
        self.metrics.resolved.inc()
        await self.outbound.publish_state(conversation)
        await self.router.drain()  # the agent has room again
        await self.queue.broadcast()
        return conversation

    async def _handoff_changes(self, conversation_id: str, **changes: Any) -> None:
        handoff = await self.store.current_handoff(conversation_id)
        if handoff is not None:
            await self.store.update_handoff(handoff.id, **changes)

    async def announce_assignment(self, conversation: Conversation, agent: Agent) -> None:
        """The router pushed ``conversation`` to ``agent``: tell the customer and the consoles."""
        await self._agent_joined(
            conversation,
            agent,
            self._joined_notice(conversation, agent),
            broadcast=False,  # the router's caller broadcasts once, after all its pushes
        )

    def _joined_notice(self, conversation: Conversation, agent: Agent) -> str:
        team = self.settings.queue.team(conversation.team).title
        return f"{agent.display_name} from {team} joined the conversation."

    async def _agent_joined(
        self, conversation: Conversation, agent: Agent, notice: str, broadcast: bool = True
    ) -> None:
        """Tell the customer who has them now, and every console what changed."""
        await self.outbound.system_message(conversation, notice)
        await self.outbound.publish(
            conversation_topic(conversation.id), agent_joined_frame(agent.display_name)
        )
        await self.outbound.publish_state(conversation)
        if broadcast:
            await self.queue.broadcast()

    # --- views and directory -------------------------------------------------------------

    async def queue_snapshot(self) -> list[dict[str, Any]]:
        return await self.queue.snapshot()

    async def conversation_view(self, conversation_id: str) -> dict[str, Any]:
        conversation = await self.records.get(conversation_id)
        handoff = await self.store.current_handoff(conversation_id)
        if handoff is None:
            handoffs = await self.store.handoffs_for_conversation(conversation_id)
            handoff = max(handoffs, key=lambda h: h.requested_at) if handoffs else None
        # The handoff the card shows is not "earlier"; every other one is.
        info = await customer_info(self.store, conversation, handoff.id if handoff else None)
        return {
            "conversation": {
                "id": conversation.id,
                "state": conversation.state.value,
                "channel": conversation.channel,
                "channel_user_id": conversation.channel_user_id,
                "team": conversation.team,
                "team_title": self.settings.queue.team(conversation.team).title
                if conversation.team
                else None,
                "priority": conversation.priority,
                "assigned_agent_id": conversation.assigned_agent_id,
                "version": conversation.version,
            },
            "customer": info.model_dump(mode="json"),
            "packet": handoff.packet if handoff else None,
            "messages": [m.to_dict() for m in await self.store.messages(conversation_id)],
            "notes": [note_dict(n) for n in await self.store.notes(conversation_id)],
            "handoff": {
                "requested_at": iso(handoff.requested_at),
                "assigned_at": iso(handoff.assigned_at),
                "first_agent_reply_at": iso(handoff.first_agent_reply_at),
                "resolved_at": iso(handoff.resolved_at),
                "intent": handoff.intent,
                "disposition": handoff.disposition,
                "bot_should_have_handled": handoff.bot_should_have_handled,
            }
            if handoff
            else None,
            "wrapup": self.wrapup_choices(handoff),
        }

    async def agent(self, agent_id: int) -> Agent | None:
        return await self.store.agent(agent_id)

    async def agent_by_username(self, username: str) -> Agent | None:
        return await self.store.agent_by_username(username)

    async def set_password_hash(self, agent_id: int, password_hash: str, replacing: str) -> None:
        """A rehash of the same password (sessions go on), only over the hash it replaces."""
        await self.store.set_agent_password(agent_id, password_hash, replacing=replacing)

    async def end_sessions(self, agent_id: int) -> None:
        await self.store.end_sessions(agent_id)

    async def agents_with_presence(self) -> list[dict[str, Any]]:
        """Every agent with their teams, availability (as routing sees it) and load."""
        present = set(await self.broker.present())
        loads = await self.store.open_assignments()
        rows = []
        for a in await self.store.agents():
            status = availability(a, present)
            rows.append(
                {
                    "id": a.id,
                    "display_name": a.display_name,
                    "username": a.username,
                    "role": a.role,
                    # An agent in no team works the default one (handoff/queue.py works_for).
                    "teams": a.teams or [self.settings.queue.default_team],
                    "skills": a.skills,
                    "languages": a.languages,
                    "capacity": a.capacity,
                    "open": loads.get(a.id, 0),
                    "availability": status,
                    "online": status == "online",
                }
            )
        return rows

    async def report(
        self, agent: Agent, start: datetime, end: datetime, team: str | None
    ) -> dict[str, Any]:
        """The dashboard (supervisors only): live tiles and the period's figures."""
        if agent.role != "supervisor":
            raise Conflict("Only supervisors can see the dashboard.")
        report = await self.dashboard.report(start, end, team)
        quality = self.starter.quality
        report["alerts"] = await quality.recent() if quality is not None else []
        return report

    async def acknowledge_alert(self, agent: Agent, alert_id: int) -> dict[str, Any]:
        """A supervisor has seen the quality alert (audited)."""
        quality = self.starter.quality
        if quality is None:
            raise NotFound("quality alerts are off")
        return await quality.acknowledge(agent, alert_id)

    async def inbox(self, where: InboxFilter, limit: int, offset: int) -> tuple[list[Any], bool]:
        """A page of the inbox (bot/store/search.py) as the console shows it."""
        rows, more = await self.store.inbox(where, limit, offset)
        return [
            {
                "conversation_id": r.conversation.id,
                "state": r.conversation.state.value,
                "channel": r.conversation.channel,
                "team": r.conversation.team,
                "team_title": self.settings.queue.team(r.conversation.team).title
                if r.conversation.team
                else None,
                "customer_name": r.customer_name or f"{r.conversation.channel} visitor",
                "agent_name": r.agent_name,
                "reason": r.reason,
                "rating": r.rating,
                "last_text": (r.last_text or "")[:200],
                "updated_at": iso(r.conversation.updated_at),
            }
            for r in rows
        ], more

    def knows_team(self, name: str) -> bool:
        return self.settings.queue.knows(name)

    def teams(self) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "title": t.title, "assignment": t.assignment}
            for t in self.settings.queue.teams
        ]

    async def set_availability(self, agent: Agent, value: object) -> Agent:
        """The agent's own switch: online (pushes may come), away or offline (none)."""
        if value not in AVAILABILITY:
            raise BadMessage(
                "bad_availability", f"Availability must be one of {', '.join(AVAILABILITY)}."
            )
        updated = await self.store.update_agent(agent.id, availability=str(value))
        await self.store.audit(f"agent:{agent.id}", "availability", None, {"to": value})
        if value == "online":
            await self.router.drain(updated.teams)
        await self.queue.broadcast()
        return updated

    async def console_opened(self, agent: Agent) -> None:
        """The agent's console is back: push teams may have waited for their room."""
        if agent.availability == "online" and await self.router.drain(agent.teams):
            await self.queue.broadcast()

    async def update_agent(self, supervisor: Agent, agent_id: int, **changes: Any) -> Agent:
        """A supervisor changes an agent's teams, skills, languages or capacity."""
        if supervisor.role != "supervisor":
            raise Conflict("Only supervisors can change agents.")
        unknown_teams = [t for t in changes.get("teams", []) if not self.settings.queue.knows(t)]
        if unknown_teams:
            raise BadMessage("unknown_team", f"There is no team {unknown_teams[0]!r}.")
        updated = await self.store.update_agent(agent_id, **changes)
        await self.store.audit(
            f"agent:{supervisor.id}", "update_agent", None, {"agent": agent_id, **changes}
        )
        await self.router.drain(updated.teams)
        await self.queue.broadcast()
        return updated

    async def subscribe_console(self) -> Subscription:
        """Every console event (queue, messages of human conversations, notes, states)."""
        return await self.broker.subscribe(CONSOLE_TOPIC)

    async def set_presence(self, member: str, ttl_seconds: float) -> None:
        await self.broker.set_presence(member, ttl_seconds)


def agent_text(text: object, what: str, limit: int) -> str:
    """An agent's reply or note, stripped; BadMessage when it is empty or over ``limit``."""
    if not isinstance(text, str) or not text.strip():
        raise BadMessage("missing_text", f"The {what} is empty: type some text first.")
    if not is_text(text):
        raise BadMessage("bad_request", f"The {what} has characters that are not valid text.")
    text = text.strip()
    if len(text) > limit:
        raise BadMessage(
            "too_long", f"The {what} is too long: {len(text)} characters, the limit is {limit}."
        )
    return text


def _check_assignee(conversation: Conversation, agent: Agent) -> None:
    if conversation.state is not ConversationState.ASSIGNED:
        raise Conflict(f"The conversation is {conversation.state.value}, not assigned.")
    if conversation.assigned_agent_id != agent.id and agent.role != "supervisor":
        raise Conflict("This conversation is assigned to another agent.")
