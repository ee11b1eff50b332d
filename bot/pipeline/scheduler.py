"""Scheduling: one conversation is processed in order, one message at a time, even across
gateway replicas, and nothing waits forever.

Each conversation has a cursor of handled customer messages. ``process()`` takes the
conversation's broker lock and handles pending messages oldest first. A retry loop answers what
is still pending (after a crash, or while Rasa was down) and starts handoffs a bot turn decided
but a stopped gateway did not start.
"""

from __future__ import annotations

import asyncio

import structlog

from bot.broker import LockTimeout
from bot.core.frames import conversation_lock
from bot.core.models import Conversation
from bot.core.policy import HandoffDecision
from bot.core.ports import HandoffDesk
from bot.core.state import HUMAN_STATES, ConversationState
from bot.core.tasks import cancel_and_wait
from bot.core.types import HANDOFF_PAYLOAD
from bot.pipeline.bot_turn import BotTurn
from bot.pipeline.context import Component, EngineContext

log = structlog.get_logger(__name__)


class Scheduler(Component):
    """Runs the bot on pending messages, one task per conversation in this process."""

    def __init__(self, ctx: EngineContext, bot_turn: BotTurn, desk: HandoffDesk) -> None:
        super().__init__(ctx)
        self.bot_turn, self.desk = bot_turn, desk
        self._tasks: set[asyncio.Task[None]] = set()
        self._processing: set[str] = set()
        # Conversations that got a message while this process was already working on them.
        self._again: set[str] = set()
        self._retry_task: asyncio.Task[None] | None = None

    @property
    def lock_ttl(self) -> float:
        # One lock hold per message, and longer than the Rasa calls of one turn can take, so it
        # never expires under a turn (another replica would then answer the message again).
        return 4 * self.settings.rasa.timeout_seconds + 30

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
        ttl = self.lock_ttl
        while True:
            async with self.broker.lock(conversation_lock(conversation_id), timeout=ttl, ttl=ttl):
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
            # What the handoff policy looks at, read along (see bot_turn._recent_turns).
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
            await self.desk.start(
                conversation, HandoffDecision(policy_reason="bot_unavailable"), None
            )
            await self.records.advance_cursor(conversation_id, pending[-1].seq)
            return True
        # False from handle: Rasa is down, the message waits for the next attempt.
        handled = await self.bot_turn.handle(conversation, pending[0], turn)
        return handled and len(pending) > 1

    async def start_due_handoffs(self) -> int:
        """Start the handoffs that bot turns decided but a stopped gateway did not start (it
        died between storing the turn and the handoff). Runs at start and with the retries;
        a conversation that gets a message first has it started by _process_next instead."""
        started = 0
        for found in await self.store.conversations_with_handoff_due():
            if found.id in self._processing:
                continue  # this process is on it: _process_next starts the handoff
            try:
                # Busy conversations are skipped, not waited for: their processing starts it.
                async with self.broker.lock(
                    conversation_lock(found.id), timeout=0, ttl=self.lock_ttl
                ):
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
        await self.desk.start(conversation, decision, await self.bot_turn.tracker(conversation.id))
        return True

    def start_retrying(self) -> None:
        """Answer what is still pending: at start (after a crash) and then every few seconds
        (messages that waited while Rasa was down)."""
        self._retry_task = asyncio.create_task(self._retry_pending())

    async def stop_retrying(self) -> None:
        await cancel_and_wait(self._retry_task)
        self._retry_task = None

    async def _retry_pending(self) -> None:
        while True:
            try:
                await self.start_due_handoffs()
            except Exception:
                log.exception("starting due handoffs failed")
            try:
                await self.desk.sweep()  # opening hours, push assignment, SLA clocks
            except Exception:
                log.exception("the human side's sweep failed")
            try:
                for conversation_id in await self.store.pending_conversations():
                    if conversation_id not in self._processing:
                        self.process_soon(conversation_id)
            except Exception:
                log.exception("retrying pending conversations failed")
            await asyncio.sleep(self.settings.rasa.retry_seconds)
