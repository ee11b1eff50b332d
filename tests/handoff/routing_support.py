"""An engine for the routing and SLA tests: the real store (SQLite), the in-process broker, Rasa
at a closed port (pause and resume fail quietly) and a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bot.broker.memory import InProcessBroker
from bot.config import Settings
from bot.core.models import Agent, Conversation
from bot.core.policy import HandoffDecision
from bot.rasa_client import RasaClient
from bot.store import Store
from bot.wiring import Engine, build_engine
from handoff.auth import hash_password
from tests.helpers import dead_port

# A Wednesday, 10:00 in Berlin.
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Desk:
    """The engine and what a test needs around it."""

    engine: Engine
    store: Store
    broker: InProcessBroker
    clock: Clock
    settings: Settings
    customers: int = field(default=0)

    async def agent(
        self,
        username: str,
        teams: list[str],
        *,
        online: bool = True,
        capacity: int = 2,
        skills: list[str] | None = None,
        languages: list[str] | None = None,
        role: str = "agent",
    ) -> Agent:
        agent = await self.store.add_agent(
            username,
            username.capitalize(),
            hash_password("not-used-here-0123"),
            role=role,
            teams=teams,
            skills=skills or [],
            languages=languages or [],
            capacity=capacity,
        )
        if online:
            await self.broker.set_presence(f"agent:{agent.id}", 3600)
        return agent

    async def handoff(
        self,
        *,
        team: str | None = None,
        priority: str | None = None,
        user: str | None = None,
        tracker: dict[str, Any] | None = None,
        channel: str = "webchat",
    ) -> Conversation:
        """A customer's conversation handed over by the bot's signal (team, priority)."""
        self.customers += 1
        user = user or f"visitor-{self.customers}"
        customer = await self.store.find_or_create_customer(channel, user)
        conversation = await self.store.open_conversation(customer.id, channel, user)
        signal: dict[str, Any] = {"reason": "test", "reason_text": "A test handoff"}
        if team:
            signal["team"] = team
        if priority:
            signal["priority"] = priority
        return await self.engine.starter.start(
            conversation, HandoffDecision(signal=signal), tracker
        )

    async def state(self, conversation: Conversation) -> tuple[str, int | None]:
        current = await self.store.conversation(conversation.id)
        assert current is not None
        return current.state.value, current.assigned_agent_id

    async def system_texts(self, conversation: Conversation) -> list[str]:
        return [
            m.text
            for m in await self.store.messages(conversation.id)
            if m.sender_kind.value == "system"
        ]


def routing_settings(tmp: Path, **extra: Any) -> Settings:
    queue = {
        "default_team": "front",
        "teams": [
            {
                "name": "front",
                "display_name": "Front line",
                "assignment": "push",
                "escalate_to": "experts",
            },
            {
                "name": "experts",
                "display_name": "Experts",
                "assignment": "push",
                "escalate_to": "supervisors",
            },
            {"name": "supervisors", "display_name": "Supervisors"},
            {"name": "billing", "display_name": "Billing"},
        ],
    }
    queue.update(extra.pop("queue", {}))
    return Settings.model_validate(
        {
            "database_url": f"sqlite:///{tmp / 'routing.sqlite3'}",
            "secret_key": "test-secret-key-0123456789abcdef",
            "queue": queue,
            **extra,
        }
    )


@asynccontextmanager
async def routing_desk(settings: Settings, clock: Clock | None = None) -> AsyncIterator[Desk]:
    clock = clock or Clock()
    store = await Store.connect(settings.database_url)
    await store.migrate()
    broker = InProcessBroker()
    async with aiohttp.ClientSession() as session:
        rasa = RasaClient([f"http://127.0.0.1:{dead_port()}"], None, session, 0.5)
        engine = build_engine(settings, store, broker, rasa, clock=clock)
        try:
            yield Desk(engine, store, broker, clock, settings)
        finally:
            await broker.close()
            await store.close()
