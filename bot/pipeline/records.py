"""Reading and changing conversations safely: compare-and-set on the version, state machine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.core.errors import NotFound, StaleVersion
from bot.core.models import Conversation
from bot.core.state import ConversationEvent, next_state
from bot.store import Store


class Records:
    """Conversation reads and writes every pipeline step and agent action shares."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, conversation_id: str) -> Conversation:
        conversation = await self.store.conversation(conversation_id)
        if conversation is None:
            raise NotFound(f"unknown conversation {conversation_id}")
        return conversation

    async def update(self, conversation_id: str, **changes: Any) -> Conversation:
        """Change fields (not the state) with compare-and-set, retrying version races."""
        while True:
            current = await self.get(conversation_id)
            try:
                return await self.store.update_conversation(
                    conversation_id, current.version, **changes
                )
            except StaleVersion:
                continue

    async def transition(
        self,
        conversation_id: str,
        *events: ConversationEvent,
        check: Callable[[Conversation], None] | None = None,
        **changes: Any,
    ) -> Conversation:
        """Apply state-machine events with one compare-and-set. On a race it re-reads and
        re-checks everything (``check`` raises to refuse) before it tries again."""
        while True:
            current = await self.get(conversation_id)
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

    async def advance_cursor(self, conversation_id: str, seq: int) -> Conversation:
        """Mark the customer's messages up to ``seq`` as handled."""
        current = await self.get(conversation_id)
        return await self.update(conversation_id, bot_cursor=max(seq, current.bot_cursor))

    async def agent_name(self, agent_id: int | None) -> str:
        agent = await self.store.agent(agent_id) if agent_id is not None else None
        return agent.display_name if agent else "Another agent"
