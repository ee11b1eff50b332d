"""The conversation service: every customer message, bot turn, handoff and agent action.

Delivery rules (docs/architecture.md): persist, then acknowledge; one conversation is processed
in order, one message at a time (a cursor of handled messages, under a per-conversation broker
lock); state changes are compare-and-set on the conversation version, so a bot reply that comes
back after the conversation left BOT is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

import structlog

from bot.broker import Broker, BrokerError, LockTimeout
from bot.config import Settings
from bot.core.clock import iso, utcnow
from bot.core.errors import BadMessage, Conflict, DuplicateMessage, NotFound, StaleVersion
from bot.core.models import (
    Agent,
    Conversation,
    MessageNlu,
    Note,
    OutboundDraft,
    PendingTurn,
    QueueRow,
)
from bot.core.policy import HandoffDecision, Turn, decide
from bot.core.state import (
    HUMAN_STATES,
    ConversationEvent,
    ConversationState,
    IllegalTransition,
    next_state,
)
from bot.core.types import Button, Direction, InboundMessage, SenderKind, StoredMessage, Understood
from bot.rasa_client import RasaClient, RasaUnavailable
from bot.store import Store
from handoff.packet import (
    CustomerInfo,
    LinkedIdentity,
    PastConversation,
    build_packet,
)

if TYPE_CHECKING:
    from bot.outbox import OutboxWorker

log = structlog.get_logger(__name__)

QUEUE = "queue"
# Button payload the gateway handles itself (the bot may be down when it is pressed).
HANDOFF_PAYLOAD = "gateway:handoff"
# Payloads connectors give to what the bot cannot read (stickers, photos, edits): stored and
# shown to agents as they are, answered by the gateway with this notice while the bot has it.
UNSUPPORTED_PAYLOAD = "gateway:unsupported"
# How long "the customer was told Rasa is down" is remembered (one notice per outage).
OUTAGE_MEMORY = 600.0
EDITED_PAYLOAD = "gateway:edited"
NOTICES = {
    UNSUPPORTED_PAYLOAD: "Sorry, I can only read text messages for now. Could you type what you "
    "need instead?",
    EDITED_PAYLOAD: "I can't see changes to messages I've already received. Please send the "
    "corrected text as a new message.",
}
CONSOLE_TOPIC = "console"
PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
CSAT_RE = re.compile(r"^\s*(?:csat:)?([1-5])(?:\s*(?:/\s*5|stars?|out of 5))?\s*[.!]?\s*$", re.I)
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def conversation_topic(conversation_id: str) -> str:
    """Broker topic of everything a customer's open sockets should see."""
    return f"conv:{conversation_id}"


class Connector(Protocol):
    """Outbound side of a channel: delivers one stored message to the customer."""

    @property
    def channel(self) -> str: ...

    async def deliver(self, conversation: Conversation, message: StoredMessage) -> None: ...


@dataclass(frozen=True)
class Accepted:
    conversation: Conversation
    message: StoredMessage
    duplicate: bool

    @property
    def needs_processing(self) -> bool:
        """Whether the bot (or the gateway) still has to act on it; a message for a person
        is delivered to the console when it is stored, and a duplicate was handled before."""
        return not self.duplicate and self.conversation.state not in HUMAN_STATES


class ConversationService:
    """Owns the conversation lifecycle; connectors and the console call it."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: Broker,
        rasa: RasaClient,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings, self.store, self.broker, self.rasa = settings, store, broker, rasa
        self.clock = clock
        self.connectors: dict[str, Connector] = {}
        # Delivers to the connectors' channels; without one (tests), _send delivers inline.
        self.outbox: OutboxWorker | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._processing: set[str] = set()
        # Conversations that got a message while this process was already working on them.
        self._again: set[str] = set()
        self._retry_task: asyncio.Task[None] | None = None

    def register_connector(self, connector: Connector) -> None:
        self.connectors[connector.channel] = connector

    # --- inbound ---------------------------------------------------------------------------

    async def receive(
        self, message: InboundMessage, conversation_id: str | None = None
    ) -> Accepted:
        """Store a customer message (deduped on its channel id). Acknowledge after this returns."""
        text = message.text.strip()
        if not text and not message.payload:
            raise BadMessage("bad_request", "The message is empty.")
        limit = self.settings.limits.max_message_chars
        if len(message.text) > limit:
            raise BadMessage(
                "too_long",
                f"Your message is {len(message.text)} characters long; the limit is {limit}. "
                "Please shorten it or split it into several messages.",
            )
        if conversation_id is None:
            customer = await self.store.find_or_create_customer(
                message.channel, message.channel_user_id, message.display_name
            )
            conversation_id = (
                await self.store.open_conversation(
                    customer.id, message.channel, message.channel_user_id
                )
            ).id
        try:
            conversation, stored = await self.store.append_inbound(
                conversation_id,
                text=text or message.payload or "",
                sender_name=message.display_name,
                payload=message.payload,
                channel_message_id=message.channel_message_id,
            )
        except DuplicateMessage as dup:
            return Accepted(await self._get(conversation_id), dup.existing, duplicate=True)
        except NotFound as exc:
            raise NotFound(f"unknown conversation {conversation_id}") from exc
        await self._publish_message(conversation, stored)
        return Accepted(conversation, stored, duplicate=False)

    def process_soon(self, conversation_id: str) -> None:
        """Process the conversation in the background (the socket keeps reading meanwhile).

        If this process is already working on the conversation, that task looks again before
        it stops, instead of a second task queueing up for the lock.
        """
        if conversation_id in self._processing:
            self._again.add(conversation_id)
            return
        self._processing.add(conversation_id)
        task = asyncio.create_task(self._process_logged(conversation_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process_logged(self, conversation_id: str) -> None:
        try:
            await self.process(conversation_id)
        except Exception:
            log.exception("processing failed", conversation_id=conversation_id)

    def start_retrying(self) -> None:
        """Answer what is still pending: at start (after a crash) and then every few seconds
        (messages that waited while Rasa was down)."""
        self._retry_task = asyncio.create_task(self._retry_pending())

    async def rebuild_queue(self) -> int:
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
            score = PRIORITY_RANK.get(conversation.priority, 2) * 1e10 + since.timestamp()
            await self.broker.enqueue(QUEUE, conversation.id, score)
            added += 1
        if added:
            log.info("queue rebuilt", conversations=added)
        return added

    async def start_due_handoffs(self) -> int:
        """Start the handoffs that bot turns decided but a stopped gateway did not start (it
        died between storing the turn and the handoff). Runs at start and with the retries;
        a conversation that gets a message first has it started by _process_next instead."""
        started = 0
        ttl = 4 * self.settings.rasa.timeout_seconds + 30
        for found in await self.store.conversations_with_handoff_due():
            if found.id in self._processing:
                continue  # this process is on it: _process_next starts the handoff
            try:
                # Busy conversations are skipped, not waited for: their processing starts it.
                async with self.broker.lock(f"lock:conv:{found.id}", timeout=0, ttl=ttl):
                    conversation = await self.store.conversation(found.id)
                    if conversation is not None and await self._start_due_handoff(conversation):
                        started += 1
            except LockTimeout:
                continue
            except Exception:
                log.exception("starting a due handoff failed", conversation_id=found.id)
        return started

    async def _start_due_handoff(self, conversation: Conversation) -> bool:
        """Start ``conversation``'s due handoff if it still has one (hold its lock)."""
        if conversation.handoff_due is None or conversation.state is not ConversationState.BOT:
            return False
        decision = HandoffDecision.from_dict(conversation.handoff_due)
        log.warning("starting a handoff left undone", conversation_id=conversation.id)
        await self._start_handoff(conversation, decision, await self._tracker(conversation.id))
        return True

    async def stop_retrying(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
            self._retry_task = None

    async def _retry_pending(self) -> None:
        while True:
            try:
                await self.start_due_handoffs()
            except Exception:
                log.exception("starting due handoffs failed")
            try:
                for conversation_id in await self.store.pending_conversations():
                    if conversation_id not in self._processing:
                        self.process_soon(conversation_id)
            except Exception:
                log.exception("retrying pending conversations failed")
            await asyncio.sleep(self.settings.rasa.retry_seconds)

    async def drain(self) -> None:
        """Wait for background processing (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def process(self, conversation_id: str) -> None:
        """Handle every stored customer message not handled yet, in order, one at a time."""
        self._processing.add(conversation_id)
        try:
            while True:
                self._again.discard(conversation_id)
                await self._process_locked(conversation_id)
                if conversation_id not in self._again:
                    return
        finally:
            self._processing.discard(conversation_id)
            if conversation_id in self._again:
                # Only after an error: a message came in meanwhile, so look again (once more;
                # if that fails too, the retry loop takes over).
                self._again.discard(conversation_id)
                self.process_soon(conversation_id)

    async def _process_locked(self, conversation_id: str) -> None:
        # One lock hold per message, and longer than the Rasa calls of one turn can take, so it
        # never expires under a turn (another replica would then answer the message again).
        ttl = 4 * self.settings.rasa.timeout_seconds + 30
        while True:
            async with self.broker.lock(f"lock:conv:{conversation_id}", timeout=ttl, ttl=ttl):
                if not await self._process_next(conversation_id):
                    return

    async def _process_next(self, conversation_id: str) -> bool:
        """Handle the oldest pending message; False when there is nothing more to do now.

        "Nothing more" is judged from the messages read here: one stored later was either
        received by this process, which then flags the conversation for another look (see
        process_soon and process), or by another replica, whose own task answers it; the retry
        loop catches anything a failure left behind.
        """
        policy = self.settings.handoff
        turn = await self.store.pending_turn(
            conversation_id,
            # What the handoff policy looks at, read along (see _recent_turns).
            recent_turns=max(1, policy.consecutive_fallbacks, policy.low_confidence_streak),
        )
        if turn is None:
            return False
        conversation, pending = turn.conversation, turn.pending
        if await self._start_due_handoff(conversation):
            # The last turn decided a handoff that did not start (the gateway stopped): the
            # customer was told a person is coming, so what they wrote since is for that person.
            return True
        if not pending or conversation.state in HUMAN_STATES:
            # With a person nothing is left to do: the console got the message when it was
            # stored, and resolve moves the bot's cursor past everything said to the person.
            return False
        if conversation.state is ConversationState.BOT and any(
            m.payload == HANDOFF_PAYLOAD for m in pending
        ):
            # The customer took the offer of a person while the bot was down: what they wrote
            # meanwhile is for that person now.
            await self._start_handoff(
                conversation, HandoffDecision(policy_reason="bot_unavailable"), None
            )
            await self._advance_cursor(conversation_id, pending[-1].seq)
            return True
        # False from _handle: Rasa is down, the message waits for the next attempt.
        handled = await self._handle(conversation, pending[0], turn)
        return handled and len(pending) > 1

    async def _handle(
        self, conversation: Conversation, message: StoredMessage, turn: PendingTurn
    ) -> bool:
        if conversation.awaiting_csat:
            rating = csat_rating(message)
            if rating is not None:
                await self._record_csat(conversation, message, rating)
                return True
            # Not a rating: the prompt is over, and this message goes to the bot.
            conversation = await self._update(conversation.id, awaiting_csat=False)
        if message.payload in NOTICES:
            await self._answer_without_bot(conversation, message, NOTICES[message.payload])
            return True
        return await self._bot_turn(conversation, message, turn)

    async def _answer_without_bot(
        self, conversation: Conversation, message: StoredMessage, text: str
    ) -> None:
        """Mark the message handled and answer it with a notice, in one transaction."""
        while True:
            try:
                fresh, stored = await self.store.append_outbound(
                    conversation.id,
                    [OutboundDraft(SenderKind.SYSTEM, text)],
                    outbox_channel=self._outbox_channel(conversation),
                    expected_version=conversation.version,
                    bot_cursor=message.seq,
                )
                break
            except StaleVersion:
                conversation = await self._get(conversation.id)
        assert fresh is not None
        await self._announce(fresh, stored)

    # --- the bot --------------------------------------------------------------------------

    async def _bot_turn(
        self, conversation: Conversation, message: StoredMessage, turn: PendingTurn
    ) -> bool:
        metadata = {
            "channel": conversation.channel,
            "customer_id": conversation.customer_id,
            "customer_name": turn.customer_name,
        }
        text = message.payload or message.text
        try:
            answer = await self.rasa.turn(conversation.id, text, metadata)
        except RasaUnavailable as exc:
            await self._bot_unavailable(conversation, message, exc)
            return False
        tracker: dict[str, Any] | None = None
        paused = answer.paused
        if not answer.replies and paused is None:
            tracker = await self._tracker(conversation.id)
            paused = bool(tracker and tracker.get("paused"))
        if not answer.replies and paused:
            # A person handed the conversation back but Rasa missed the resume: resume now and
            # ask again, instead of leaving the customer with a silent bot.
            try:
                await self.rasa.resume(conversation.id)
                answer = await self.rasa.turn(conversation.id, text, metadata)
            except RasaUnavailable as exc:
                await self._bot_unavailable(conversation, message, exc)
                return False
            tracker = None
        replies = answer.replies
        if answer.error:
            log.warning(
                "rasa failed on the message", conversation_id=conversation.id, error=answer.error
            )
        # What NLU understood is for the transcript, the packet and the gateway's policy. Rasa's
        # gateway channel sends it along; from a plain REST channel it takes a tracker read.
        nlu = answer.nlu
        if nlu is None:
            if tracker is None:  # (already read, after this turn, when it had no replies)
                tracker = await self._tracker(conversation.id)
            if tracker is not None:
                intent = (tracker.get("latest_message") or {}).get("intent") or {}
                nlu = Understood(intent.get("name"), intent.get("confidence"))
        decision = decide(self.settings.handoff, replies, self._recent_turns(turn, message, nlu))
        drafts = [
            OutboundDraft(SenderKind.BOT, reply.text or "", buttons=tuple(reply.buttons))
            for reply in replies
            if reply.text or reply.buttons
        ]
        version = conversation.version
        while True:
            try:
                # Replies stored + queued, NLU recorded, message marked handled and a decided
                # handoff marked due: all or nothing.
                fresh, stored = await self.store.append_outbound(
                    conversation.id,
                    drafts,
                    outbox_channel=self._outbox_channel(conversation),
                    expected_version=version,
                    bot_cursor=message.seq,
                    nlu=MessageNlu(message.id, nlu.intent, nlu.confidence) if nlu else None,
                    handoff_due=asdict(decision) if decision else None,
                )
                break
            except StaleVersion:
                current = await self._get(conversation.id)
                if current.bot_cursor >= message.seq:
                    log.info("message already answered elsewhere", conversation_id=conversation.id)
                    return True
                if current.state is not ConversationState.BOT:
                    log.info(
                        "stale bot reply dropped",
                        conversation_id=conversation.id,
                        replies=len(replies),
                        state=current.state.value,
                    )
                    await self._advance_cursor(conversation.id, message.seq)
                    if nlu is not None:
                        await self.store.set_message_nlu(message.id, nlu.intent, nlu.confidence)
                    return True
                version = current.version
        assert fresh is not None
        conversation = fresh
        await self._announce(conversation, stored)
        if decision is not None:
            # SQLite calls don't yield to the event loop: let the sockets send the replies
            # before the handoff's work.
            await asyncio.sleep(0)
            if tracker is None:
                tracker = await self._tracker(conversation.id)  # the slots, for the packet
            await self._start_handoff(conversation, decision, tracker)
        return True

    async def _tracker(self, conversation_id: str) -> dict[str, Any] | None:
        try:
            return await self.rasa.tracker(conversation_id)
        except RasaUnavailable:
            return None

    async def _bot_unavailable(
        self, conversation: Conversation, message: StoredMessage, exc: Exception
    ) -> None:
        """Rasa is down: tell the customer once, and offer a person if it lasts."""
        log.warning("rasa unavailable", conversation_id=conversation.id, error=str(exc))
        # Broker keys, not process memory: with several replicas retrying, the customer is
        # still told (and offered a person) once per outage.
        if await self.broker.first_seen(f"rasa-down:told:{conversation.id}", OUTAGE_MEMORY):
            await self._system_message(
                conversation,
                "Sorry, I'm having a technical problem right now. Your message is saved and I'll "
                "answer as soon as I'm back.",
            )
        waited = (self.clock() - message.created_at).total_seconds()
        if waited >= self.settings.rasa.offer_human_after_seconds and await self.broker.first_seen(
            f"rasa-down:offered:{conversation.id}:{message.seq}", OUTAGE_MEMORY
        ):
            await self._send(
                conversation,
                SenderKind.SYSTEM,
                "I'm still not back. Would you like to talk to a person instead?",
                buttons=[Button(title="Talk to a person", payload=HANDOFF_PAYLOAD)],
            )

    def _recent_turns(
        self, turn: PendingTurn, message: StoredMessage, nlu: Understood | None
    ) -> list[Turn]:
        """Customer turns up to ``message`` since the bot last took over from a person (or the
        start), as many as the handoff policy looks at; ``message`` with ``nlu``."""
        stored = [m for m in turn.recent if m.seq <= message.seq]
        turns = [Turn(m.text, m.intent, m.confidence) for m in stored]
        if stored and stored[-1].id == message.id and nlu is not None:
            turns[-1] = Turn(message.text, nlu.intent, nlu.confidence)
        return turns

    async def _advance_cursor(self, conversation_id: str, seq: int) -> Conversation:
        """Mark the customer's messages up to ``seq`` as handled."""
        current = await self._get(conversation_id)
        return await self._update(conversation_id, bot_cursor=max(seq, current.bot_cursor))

    # --- handoff ------------------------------------------------------------------------

    def team_open(self) -> bool:
        hours = self.settings.hours
        if hours.always_open:
            return True
        now = self.clock().astimezone(ZoneInfo(hours.timezone))
        span = hours.schedule.get(WEEKDAYS[now.weekday()])
        if not span:
            return False
        start, end = span.split("-")
        return start <= now.strftime("%H:%M") < end

    async def _customer_info(self, conversation: Conversation) -> CustomerInfo:
        customer = await self.store.customer(conversation.customer_id)
        identities = await self.store.identities(conversation.customer_id)
        past = []
        for other in await self.store.conversations_for_customer(conversation.customer_id):
            if other.id == conversation.id:
                continue
            handoffs = await self.store.handoffs_for_conversation(other.id)
            past.append(
                PastConversation(
                    conversation_id=other.id,
                    started_at=other.created_at,
                    state=other.state.value,
                    reason=handoffs[0].reason if handoffs else None,
                )
            )
        return CustomerInfo(
            id=conversation.customer_id,
            display_name=customer.display_name if customer else None,
            channel=conversation.channel,
            channel_user_id=conversation.channel_user_id,
            vip=bool(customer and customer.vip),
            linked_identities=[
                LinkedIdentity(channel=i.channel, channel_user_id=i.channel_user_id)
                for i in identities
            ],
            past_conversations=past,
        )

    async def _start_handoff(
        self,
        conversation: Conversation,
        decision: HandoffDecision,
        tracker: dict[str, Any] | None,
        source_agent: Agent | None = None,
    ) -> Conversation:
        try:
            await self.rasa.pause(conversation.id)
        except RasaUnavailable as exc:
            # The gateway stops sending to the bot anyway; the pause only keeps Rasa quiet.
            log.warning("could not pause rasa", conversation_id=conversation.id, error=str(exc))
        open_now = source_agent is not None or self.team_open()
        event = ConversationEvent.HANDOFF if open_now else ConversationEvent.NO_AGENT
        packet = build_packet(
            conversation_id=conversation.id,
            customer=await self._customer_info(conversation),
            messages=await self.store.messages(conversation.id),
            tracker=tracker,
            signal=decision.signal,
            policy_reason=decision.policy_reason,
            default_team=self.settings.queue.default_team,
            now=self.clock(),
        )
        if source_agent is not None:
            packet = packet.model_copy(update={"source": "agent"})
        conversation = await self._transition(
            conversation.id, event, team=packet.team, priority=packet.priority, handoff_due=None
        )
        handoff = await self.store.create_handoff(
            conversation.id,
            packet.model_dump(mode="json"),
            packet.reason,
            packet.team,
            packet.priority,
        )
        await self.store.audit(
            f"agent:{source_agent.id}" if source_agent else "bot",
            "handoff",
            conversation.id,
            {"reason": packet.reason, "state": conversation.state.value, "handoff": handoff.id},
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
            score = PRIORITY_RANK.get(packet.priority, 2) * 1e10 + self.clock().timestamp()
            await self.broker.enqueue(QUEUE, conversation.id, score)
            if source_agent is None:
                position, eta = await self.queue_position(conversation.id)
                await self._system_message(
                    conversation,
                    f"You're number {position} in the queue for a person "
                    f"(about {format_wait(eta)}). They'll see our conversation so far, so "
                    "you won't need to repeat anything. You can keep typing here meanwhile.",
                )
        else:
            await self._system_message(
                conversation,
                "Our team is offline right now. Your conversation is saved, and a person will "
                "reply here as soon as we're back. You can add anything else meanwhile.",
            )
        await self._publish_state(conversation)
        await self.broadcast_queue()
        return conversation

    async def take_over(self, conversation_id: str, agent: Agent) -> Conversation:
        """An agent takes a live bot conversation: the bot stops, the agent is assigned."""
        conversation = await self._get(conversation_id)
        if conversation.state is not ConversationState.BOT:
            raise Conflict("Only a conversation that is with the bot can be taken over.")
        try:
            tracker: dict[str, Any] | None = await self.rasa.tracker(conversation_id)
        except RasaUnavailable:
            tracker = None
        await self._start_handoff(
            conversation, HandoffDecision(policy_reason="agent_takeover"), tracker, agent
        )
        return await self.claim(conversation_id, agent)

    async def queue_position(self, conversation_id: str) -> tuple[int, float]:
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

    async def broadcast_queue(self) -> None:
        """Send the queue to every console and each waiting customer their new position."""
        await self._publish(CONSOLE_TOPIC, {"type": "queue", "items": await self.queue_snapshot()})
        per_position = await self._seconds_per_position()
        for position, conversation_id in enumerate(await self.broker.queue_items(QUEUE), start=1):
            await self._publish(
                conversation_topic(conversation_id),
                {
                    "type": "queue",
                    "position": position,
                    "eta_seconds": round(position * per_position),
                },
            )

    # --- agents ----------------------------------------------------------------------------

    async def claim(self, conversation_id: str, agent: Agent) -> Conversation:
        conversation = await self._get(conversation_id)
        if conversation.state is ConversationState.QUEUED:
            # The queue entry is only an index; the compare-and-set below decides who wins
            # (an entry lost in a broker restart must not make the conversation unclaimable).
            await self.broker.remove(QUEUE, conversation_id)
        try:
            conversation = await self._transition(
                conversation_id, ConversationEvent.CLAIM, assigned_agent_id=agent.id
            )
        except IllegalTransition:
            current = await self._get(conversation_id)
            if current.state is ConversationState.ASSIGNED:
                who = await self._agent_name(current.assigned_agent_id)
                raise Conflict(f"{who} already took this conversation.") from None
            raise
        handoff = await self.store.current_handoff(conversation_id)
        if handoff is not None:
            await self.store.update_handoff(handoff.id, assigned_at=self.clock(), agent_id=agent.id)
        await self.store.audit(f"agent:{agent.id}", "claim", conversation_id)
        await self._system_message(
            conversation, f"{agent.display_name} from our support team joined the conversation."
        )
        await self._publish(
            conversation_topic(conversation_id),
            {"type": "agent_joined", "name": agent.display_name},
        )
        await self._publish_state(conversation)
        await self.broadcast_queue()
        return conversation

    def _check_assignee(self, conversation: Conversation, agent: Agent) -> None:
        if conversation.state is not ConversationState.ASSIGNED:
            raise Conflict(f"The conversation is {conversation.state.value}, not assigned.")
        if conversation.assigned_agent_id != agent.id and agent.role != "supervisor":
            raise Conflict("This conversation is assigned to another agent.")

    async def agent_reply(self, conversation_id: str, agent: Agent, text: str) -> StoredMessage:
        text = text.strip()
        if not text:
            raise BadMessage("bad_request", "The reply is empty.")
        if len(text) > self.settings.limits.max_message_chars:
            raise BadMessage("too_long", "The reply is too long.")
        conversation = await self._get(conversation_id)
        self._check_assignee(conversation, agent)
        message = await self._send(
            conversation, SenderKind.AGENT, text, sender_name=agent.display_name
        )
        handoff = await self.store.current_handoff(conversation_id)
        if handoff is not None and handoff.first_agent_reply_at is None:
            await self.store.update_handoff(handoff.id, first_agent_reply_at=message.created_at)
        return message

    async def add_note(self, conversation_id: str, agent: Agent, text: str) -> Note:
        text = text.strip()
        if not text:
            raise BadMessage("bad_request", "The note is empty.")
        await self._get(conversation_id)
        note = await self.store.add_note(conversation_id, agent.id, text)
        await self._publish(
            CONSOLE_TOPIC,
            {"type": "note", "conversation_id": conversation_id, "note": note_dict(note)},
        )
        return note

    async def transfer(self, conversation_id: str, agent: Agent, to_agent_id: int) -> Conversation:
        conversation = await self._get(conversation_id)
        self._check_assignee(conversation, agent)
        target = await self.store.agent(to_agent_id)
        if target is None:
            raise NotFound(f"unknown agent {to_agent_id}")

        def still_allowed(current: Conversation) -> None:
            self._check_assignee(current, agent)
            if target.id == current.assigned_agent_id:
                raise Conflict(f"{target.display_name} already has this conversation.")

        conversation = await self._transition(
            conversation_id,
            ConversationEvent.TRANSFER,
            check=still_allowed,
            assigned_agent_id=target.id,
        )
        handoff = await self.store.current_handoff(conversation_id)
        if handoff is not None:
            await self.store.update_handoff(handoff.id, agent_id=target.id)
        await self.store.audit(
            f"agent:{agent.id}", "transfer", conversation_id, {"to_agent": target.id}
        )
        await self._system_message(
            conversation, f"{target.display_name} is taking over from {agent.display_name}."
        )
        await self._publish(
            conversation_topic(conversation_id),
            {"type": "agent_joined", "name": target.display_name},
        )
        await self._publish_state(conversation)
        await self.broadcast_queue()
        return conversation

    async def resolve(self, conversation_id: str, agent: Agent) -> Conversation:
        """Close the human part: the bot resumes (slots kept) and asks for a rating."""
        conversation = await self._get(conversation_id)
        self._check_assignee(conversation, agent)
        # What the customer wrote while a person had the conversation was for that person:
        # the bot's cursor moves past it in the same update that hands the conversation back.
        stored = await self.store.messages(conversation_id)
        last_inbound = max((m.seq for m in stored if m.direction is Direction.INBOUND), default=0)
        # resolve + return_to_bot in ONE compare-and-set: no window in which a crash or a
        # customer message finds the conversation RESOLVED.
        conversation = await self._transition(
            conversation_id,
            ConversationEvent.RESOLVE,
            ConversationEvent.RETURN_TO_BOT,
            check=lambda current: self._check_assignee(current, agent),
            assigned_agent_id=None,
            awaiting_csat=True,
            bot_cursor=last_inbound,
        )
        handoff = await self.store.current_handoff(conversation_id)
        if handoff is not None:
            await self.store.update_handoff(handoff.id, resolved_at=self.clock())
        await self.store.audit(f"agent:{agent.id}", "resolve", conversation_id)
        try:
            await self.rasa.resume(conversation.id)
        except RasaUnavailable as exc:
            # The next bot turn sees the paused tracker and resumes it then.
            log.warning("could not resume rasa", conversation_id=conversation.id, error=str(exc))
        await self._send(
            conversation,
            SenderKind.SYSTEM,
            self.settings.csat_prompt,
            buttons=[Button(title=str(n), payload=f"csat:{n}") for n in range(1, 6)],
            payload="csat_request",
        )
        await self._publish_state(conversation)
        await self.broadcast_queue()
        return conversation

    async def _record_csat(
        self, conversation: Conversation, message: StoredMessage, rating: int
    ) -> None:
        handoffs = await self.store.handoffs_for_conversation(conversation.id)
        latest = max(handoffs, key=lambda h: h.requested_at) if handoffs else None
        await self.store.add_csat(conversation.id, latest.id if latest else None, rating)
        conversation = await self._update(
            conversation.id, awaiting_csat=False, bot_cursor=message.seq
        )
        await self._system_message(conversation, "Thank you for your feedback!")

    # --- views for the console ---------------------------------------------------------------

    async def queue_snapshot(self) -> list[dict[str, Any]]:
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
        items = []
        for row in sorted(rows, key=order):
            conversation = row.conversation
            items.append(
                {
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
                    "last_message": row.last_customer_text[:200]
                    if row.last_customer_text
                    else None,
                }
            )
        return items

    async def conversation_view(self, conversation_id: str) -> dict[str, Any]:
        conversation = await self._get(conversation_id)
        handoff = await self.store.current_handoff(conversation_id)
        if handoff is None:
            handoffs = await self.store.handoffs_for_conversation(conversation_id)
            handoff = max(handoffs, key=lambda h: h.requested_at) if handoffs else None
        info = await self._customer_info(conversation)
        return {
            "conversation": {
                "id": conversation.id,
                "state": conversation.state.value,
                "channel": conversation.channel,
                "channel_user_id": conversation.channel_user_id,
                "team": conversation.team,
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
            }
            if handoff
            else None,
        }

    # --- helpers -----------------------------------------------------------------------------

    async def _update(self, conversation_id: str, **changes: Any) -> Conversation:
        """Change fields (not the state) with compare-and-set, retrying version races."""
        while True:
            current = await self._get(conversation_id)
            try:
                return await self.store.update_conversation(
                    conversation_id, current.version, **changes
                )
            except StaleVersion:
                continue

    async def _publish(self, topic: str, event: dict[str, Any]) -> None:
        """Fan-out after a commit is best effort: what is stored stays stored (no error for the
        caller to retry into a duplicate); sockets that missed it resync when the broker is back."""
        try:
            await self.broker.publish(topic, event)
        except BrokerError as exc:
            log.warning("publish failed; consumers resync", topic=topic, error=str(exc))

    async def _get(self, conversation_id: str) -> Conversation:
        conversation = await self.store.conversation(conversation_id)
        if conversation is None:
            raise NotFound(f"unknown conversation {conversation_id}")
        return conversation

    async def _agent_name(self, agent_id: int | None) -> str:
        agent = await self.store.agent(agent_id) if agent_id is not None else None
        return agent.display_name if agent else "Another agent"

    async def _transition(
        self,
        conversation_id: str,
        *events: ConversationEvent,
        check: Callable[[Conversation], None] | None = None,
        **changes: Any,
    ) -> Conversation:
        """Apply state-machine events with one compare-and-set. On a race it re-reads and
        re-checks everything (``check`` raises to refuse) before it tries again."""
        while True:
            current = await self._get(conversation_id)
            if check is not None:
                check(current)
            new_state = current.state
            for event in events:
                new_state = next_state(new_state, event)
            try:
                return await self.store.update_conversation(
                    conversation_id, current.version, state=new_state, **changes
                )
            except StaleVersion:
                continue  # re-read: next_state raises if the state moved on meanwhile

    async def _send(
        self,
        conversation: Conversation,
        sender: SenderKind,
        text: str,
        *,
        buttons: list[Button] | None = None,
        sender_name: str | None = None,
        payload: str | None = None,
    ) -> StoredMessage:
        _, (message,) = await self.store.append_outbound(
            conversation.id,
            [OutboundDraft(sender, text, sender_name, tuple(buttons or ()), payload)],
            outbox_channel=self._outbox_channel(conversation),
        )
        await self._announce(conversation, [message])
        return message

    def _outbox_channel(self, conversation: Conversation) -> str | None:
        """The channel to queue outbound messages for, when an outbox delivers them.

        Web chat has no connector: its sockets get the broker event instead.
        """
        if self.outbox is not None and conversation.channel in self.connectors:
            return conversation.channel
        return None

    async def _announce(self, conversation: Conversation, stored: list[StoredMessage]) -> None:
        """Fan stored outbound messages out to sockets and consoles, and wake the outbox."""
        for message in stored:
            await self._publish_message(conversation, message)
        connector = self.connectors.get(conversation.channel)
        if connector is None or not stored:
            return
        if self.outbox is not None:
            self.outbox.notify()
        else:
            for message in stored:
                await connector.deliver(conversation, message)

    async def _system_message(self, conversation: Conversation, text: str) -> StoredMessage:
        return await self._send(conversation, SenderKind.SYSTEM, text)

    async def _publish_message(self, conversation: Conversation, message: StoredMessage) -> None:
        event = {"type": "message", **message.to_dict()}
        await self._publish(conversation_topic(conversation.id), event)
        # The caller's copy of the conversation is current enough: it was read (or written)
        # right before this message was stored.
        if conversation.state in HUMAN_STATES:
            await self._publish(
                CONSOLE_TOPIC,
                {
                    "type": "message",
                    "conversation_id": conversation.id,
                    "message": message.to_dict(),
                },
            )

    async def _publish_state(self, conversation: Conversation) -> None:
        await self._publish(
            conversation_topic(conversation.id),
            {"type": "state", "state": conversation.state.value},
        )
        await self._publish(
            CONSOLE_TOPIC,
            {
                "type": "conversation",
                "conversation_id": conversation.id,
                "state": conversation.state.value,
                "assigned_agent_id": conversation.assigned_agent_id,
            },
        )


def csat_rating(message: StoredMessage) -> int | None:
    """A 1-5 rating from a button payload ("csat:4") or a typed digit ("4", "5 stars")."""
    for candidate in (message.payload, message.text):
        if candidate:
            match = CSAT_RE.match(candidate)
            if match:
                return int(match.group(1))
    return None


def format_wait(seconds: float) -> str:
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def note_dict(note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "agent_name": note.agent_name,
        "text": note.text,
        "created_at": note.created_at.isoformat(),
    }
