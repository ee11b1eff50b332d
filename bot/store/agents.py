"""The console's side of the record: agents, their internal notes, CSAT ratings, the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.core.clock import utcnow
from bot.core.errors import DuplicateAgent, NotFound
from bot.core.models import Agent, CsatRating, Note
from bot.core.state import ConversationState
from bot.store.conversations import of_conversation, require_conversation
from bot.store.engine import StoreEngine, insert_record
from bot.store.rows import to_agent, to_csat, to_note
from bot.store.schema import (
    agents,
    audit,
    conversation_reads,
    conversations,
    csat,
    messages,
    notes,
    survey_answers,
)

__all__ = ["AVAILABILITY", "AgentsMixin"]

AVAILABILITY = ("online", "away", "offline")
_AGENT_CHANGES = frozenset(
    {"display_name", "role", "teams", "skills", "languages", "capacity", "availability"}
)


def _audit_entry(row: sa.Row[Any]) -> dict[str, Any]:
    """An audit row as a dict of its columns; details is a dict, empty when none were given."""
    return {**row._asdict(), "details": dict(row.details or {})}


class AgentsMixin(StoreEngine):
    """The store's console users, and what they (and customers) record about conversations.

    New records are built with id 0 and get their id from the database (``insert_record``).
    """

    # -- agents ---------------------------------------------------------------------------

    async def add_agent(
        self,
        username: str,
        display_name: str,
        password_hash: str,
        role: str = "agent",
        teams: Sequence[str] = (),
        *,
        skills: Sequence[str] = (),
        languages: Sequence[str] = (),
        capacity: int = 3,
    ) -> Agent:
        """Create a console user. DuplicateAgent if the username is taken."""
        new = Agent(
            0,
            username,
            display_name,
            password_hash,
            role,
            list(teams),
            utcnow(),
            skills=list(skills),
            languages=list(languages),
            capacity=capacity,
        )
        try:
            async with self._tx(write=True) as conn:
                return await insert_record(conn, agents, new)
        except IntegrityError as exc:
            raise DuplicateAgent(f"agent {username!r} already exists") from exc

    async def agent(self, agent_id: int) -> Agent | None:
        """The agent with this id, or None."""
        return await self._one(sa.select(agents).where(agents.c.id == agent_id), to_agent)

    async def agent_by_username(self, username: str) -> Agent | None:
        """The agent with this username, or None."""
        return await self._one(sa.select(agents).where(agents.c.username == username), to_agent)

    async def agents(self) -> list[Agent]:
        """All agents, in order of creation."""
        return await self._all(sa.select(agents).order_by(agents.c.id), to_agent)

    async def update_agent(self, agent_id: int, **changes: Any) -> Agent:
        """Change an agent's ``display_name``, ``role``, ``teams``, ``skills``, ``languages``,
        ``capacity`` or ``availability`` (anything else: ValueError); NotFound if there is no
        such agent."""
        unknown = set(changes) - _AGENT_CHANGES
        if unknown:
            raise ValueError(f"cannot update agent fields {sorted(unknown)}")
        if "availability" in changes and changes["availability"] not in AVAILABILITY:
            raise ValueError(f"availability must be one of {AVAILABILITY}")
        if "capacity" in changes and not 0 <= changes["capacity"] <= 100:
            raise ValueError("capacity must be from 0 to 100")
        values = {k: list(v) if isinstance(v, list | tuple) else v for k, v in changes.items()}
        update = agents.update().where(agents.c.id == agent_id).values(**values)
        async with self._tx(write=True) as conn:
            row = (await conn.execute(update.returning(*agents.c))).first()
        if row is None:
            raise NotFound(f"no agent {agent_id}")
        return to_agent(row)

    async def open_assignments(self) -> dict[int, int]:
        """How many conversations each agent has now (agents with none are left out)."""
        query = (
            sa.select(conversations.c.assigned_agent_id, sa.func.count())
            .where(conversations.c.state == ConversationState.ASSIGNED.value)
            .group_by(conversations.c.assigned_agent_id)
        )
        return {
            agent_id: count
            for agent_id, count in await self._all(query, tuple)
            if agent_id is not None
        }

    async def mark_assigned(self, agent_id: int, at: datetime) -> None:
        """Remember when the agent last got a conversation (push assignment's tie-break)."""
        await self._update_one(
            agents.update().where(agents.c.id == agent_id).values(last_assigned_at=at),
            None,
            f"no agent {agent_id}",
        )

    async def set_agent_password(
        self,
        agent_id: int,
        password_hash: str,
        *,
        end_sessions: bool = False,
        replacing: str | None = None,
    ) -> None:
        """Replace an agent's password hash (a new password: ``end_sessions``, so every
        console session of the agent ends; a rehash of the same one: not, and ``replacing``
        the hash it was computed from, so it can never undo a password change made
        meanwhile). NotFound if there is no such agent (or its hash moved on)."""
        values: dict[str, Any] = {"password_hash": password_hash}
        if end_sessions:
            values["session_version"] = agents.c.session_version + 1
        update = agents.update().where(agents.c.id == agent_id)
        if replacing is not None:
            update = update.where(agents.c.password_hash == replacing)
        await self._update_one(update.values(**values), None, f"no agent {agent_id}")

    async def end_sessions(self, agent_id: int) -> None:
        """End every console session of the agent (their cookies stop working at once)."""
        await self._update_one(
            agents.update()
            .where(agents.c.id == agent_id)
            .values(session_version=agents.c.session_version + 1),
            None,
            f"no agent {agent_id}",
        )

    # -- notes, CSAT, audit ---------------------------------------------------------------

    async def add_note(self, conversation_id: str, agent_id: int, text: str) -> Note:
        """Leave an internal note. NotFound for an unknown conversation or agent."""
        created_at = utcnow()
        async with self._tx(write=True) as conn:
            await require_conversation(conn, conversation_id)
            agent_name = (
                await conn.execute(sa.select(agents.c.display_name).where(agents.c.id == agent_id))
            ).scalar_one_or_none()
            if agent_name is None:
                raise NotFound(f"no agent {agent_id}")
            new = Note(0, conversation_id, agent_id, agent_name, text, created_at)
            return await insert_record(conn, notes, new)

    async def notes(self, conversation_id: str) -> list[Note]:
        """A conversation's notes, oldest first, with each agent's current display name."""
        query = (
            of_conversation(notes, conversation_id)
            .add_columns(agents.c.display_name.label("agent_name"))
            .join(agents, agents.c.id == notes.c.agent_id)
        )
        return await self._all(query, to_note)

    async def add_csat(
        self, conversation_id: str, handoff_id: int | None, rating: int
    ) -> CsatRating:
        """Record a rating of 1..5 (anything else: ValueError). NotFound for unknown ids."""
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise ValueError(f"CSAT rating must be an integer from 1 to 5, not {rating!r}")
        new = CsatRating(0, conversation_id, handoff_id, rating, utcnow())
        try:
            async with self._tx(write=True) as conn:
                await require_conversation(conn, conversation_id)
                return await insert_record(conn, csat, new)
        except IntegrityError as exc:
            raise NotFound(f"no handoff {handoff_id}") from exc

    async def add_survey_answer(
        self,
        conversation_id: str,
        handoff_id: int | None,
        customer_id: str,
        kind: str,
        score: int,
    ) -> None:
        """A CES or NPS answer."""
        async with self._tx(write=True) as conn:
            await conn.execute(
                survey_answers.insert().values(
                    conversation_id=conversation_id,
                    handoff_id=handoff_id,
                    customer_id=customer_id,
                    kind=kind,
                    score=score,
                    created_at=utcnow(),
                )
            )

    async def last_survey_answer(self, customer_id: str, kind: str) -> datetime | None:
        """When the customer last answered a survey of ``kind``, if ever."""
        query = (
            sa.select(survey_answers.c.created_at)
            .where(survey_answers.c.customer_id == customer_id, survey_answers.c.kind == kind)
            .order_by(survey_answers.c.created_at.desc())
            .limit(1)
        )
        async with self._tx() as conn:
            value: datetime | None = (await conn.execute(query)).scalar_one_or_none()
        return value

    async def survey_answers_of(self, conversation_id: str) -> list[tuple[str, int]]:
        """A conversation's CES and NPS answers, oldest first: (kind, score)."""
        query = (
            sa.select(survey_answers.c.kind, survey_answers.c.score)
            .where(survey_answers.c.conversation_id == conversation_id)
            .order_by(survey_answers.c.id)
        )
        return await self._all(query, lambda row: (str(row[0]), int(row[1])))

    async def csat_for(self, conversation_id: str) -> list[CsatRating]:
        """A conversation's ratings, oldest first."""
        return await self._all(of_conversation(csat, conversation_id), to_csat)

    async def audit(
        self,
        actor: str,
        action: str,
        conversation_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append to the audit trail (who did what, to which conversation)."""
        async with self._tx(write=True) as conn:
            await conn.execute(
                audit.insert().values(
                    created_at=utcnow(),
                    actor=actor,
                    action=action,
                    conversation_id=conversation_id,
                    details=details,
                )
            )

    async def mark_read(self, agent_id: int, conversation_id: str, seq: int) -> None:
        """The agent has seen the conversation up to ``seq`` (never moves backwards)."""
        now = utcnow()
        key = (conversation_reads.c.agent_id == agent_id) & (
            conversation_reads.c.conversation_id == conversation_id
        )
        async with self._tx(write=True) as conn:
            found = (
                await conn.execute(sa.select(conversation_reads.c.last_read_seq).where(key))
            ).first()
            if found is None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            conversation_reads.insert().values(
                                agent_id=agent_id,
                                conversation_id=conversation_id,
                                last_read_seq=seq,
                                updated_at=now,
                            )
                        )
                    return
                except IntegrityError:
                    pass  # marked at the same moment by another tab: update below
            await conn.execute(
                conversation_reads.update()
                .where(key, conversation_reads.c.last_read_seq < seq)
                .values(last_read_seq=seq, updated_at=now)
            )

    async def unread_counts(self, agent_id: int) -> dict[str, int]:
        """Customer messages the agent has not seen yet, per conversation assigned to them
        (a conversation they never opened: all of its customer messages)."""
        read = conversation_reads
        query = (
            sa.select(messages.c.conversation_id, sa.func.count())
            .join(conversations, conversations.c.id == messages.c.conversation_id)
            .outerjoin(
                read,
                (read.c.conversation_id == messages.c.conversation_id)
                & (read.c.agent_id == agent_id),
            )
            .where(
                conversations.c.assigned_agent_id == agent_id,
                conversations.c.state == "assigned",
                messages.c.direction == "in",
                messages.c.seq > sa.func.coalesce(read.c.last_read_seq, 0),
            )
            .group_by(messages.c.conversation_id)
        )
        return dict(await self._all(query, lambda row: (row[0], int(row[1]))))

    async def audit_entries(
        self, action: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` entries of the whole trail (of one ``action``), oldest first."""
        query = sa.select(audit).order_by(audit.c.id.desc()).limit(limit)
        if action is not None:
            query = query.where(audit.c.action == action)
        return list(reversed(await self._all(query, _audit_entry)))

    async def audit_log(self, conversation_id: str) -> list[dict[str, Any]]:
        """A conversation's audit trail, oldest first.

        Each entry: id, created_at (aware datetime), actor, action, conversation_id, details
        (a dict, empty when none were given).
        """
        return await self._all(of_conversation(audit, conversation_id), _audit_entry)
