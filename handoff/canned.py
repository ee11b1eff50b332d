"""Canned replies: saved answers an agent types as ``/shortcut`` in the console's reply box.

A reply belongs to a team (``team:orders``: every member may use it, supervisors manage it) or
to one agent (``agent:12``: theirs alone). Its text may hold placeholders, filled from the
conversation when the agent picks it: ``{customer_name}``, ``{order_number}`` and
``{agent_name}``. A value the conversation does not have is left as a bracketed hint
("[order number]") for the agent to fill in before sending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.core.clock import utcnow
from bot.core.errors import BadMessage, Forbidden, NotFound
from bot.core.models import Agent, CannedReply
from bot.store import ShortcutTaken, Store

PLACEHOLDERS = ("customer_name", "order_number", "agent_name")
SHORTCUT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
PLACEHOLDER_RE = re.compile(r"\{([^{}\s]*)\}")
MAX_TEXT = 2000
MAX_LISTED = 1000  # the Replies page lists them all (a team rarely has more than a few dozen)
MAX_OFFERED = 20  # the reply box offers the first few that match


@dataclass(frozen=True)
class Filled:
    """A reply with its placeholders filled for one conversation."""

    reply: CannedReply
    text: str
    missing: list[str]


def scopes_of(agent: Agent, settings: Settings) -> list[str]:
    """Whose replies the agent may use: their own, and their teams' (a supervisor: every team's)."""
    teams = [t.name for t in settings.queue.teams] if agent.role == "supervisor" else agent.teams
    return [f"agent:{agent.id}", *(f"team:{team}" for team in teams)]


def check(shortcut: object, text: object) -> tuple[str, str]:
    """The shortcut (lower case, without a leading "/") and the text, or BadMessage."""
    if not isinstance(shortcut, str) or not SHORTCUT_RE.match(shortcut.strip().lstrip("/").lower()):
        raise BadMessage(
            "bad_shortcut",
            "The shortcut must be 1 to 32 letters, digits, '-' or '_', starting with a letter "
            "or digit (for example 'refund-time').",
        )
    if not isinstance(text, str) or not text.strip():
        raise BadMessage("missing_text", "The reply is empty: type the text to send.")
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise BadMessage(
            "too_long", f"The reply is {len(text)} characters; the limit is {MAX_TEXT}."
        )
    unknown = sorted({name for name in PLACEHOLDER_RE.findall(text) if name not in PLACEHOLDERS})
    if unknown:
        raise BadMessage(
            "bad_placeholder",
            f"Unknown placeholder {{{unknown[0]}}}: use "
            + ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
            + ".",
        )
    return shortcut.strip().lstrip("/").lower(), text


def json_of(reply: CannedReply, agent: Agent) -> dict[str, Any]:
    kind, _, owner = reply.scope.partition(":")
    return {
        "id": reply.id,
        "shortcut": reply.shortcut,
        "text": reply.text,
        "team": owner if kind == "team" else None,
        "personal": kind == "agent",
        "editable": may_manage(agent, reply.scope),
        "updated_at": reply.updated_at.isoformat(),
    }


def may_manage(agent: Agent, scope: str) -> bool:
    return scope == f"agent:{agent.id}" or (
        scope.startswith("team:") and agent.role == "supervisor"
    )


class CannedReplies:
    """Managing canned replies, and filling them in for a conversation."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings

    async def usable(
        self, agent: Agent, prefix: str = "", limit: int = MAX_LISTED
    ) -> list[CannedReply]:
        return await self.store.canned_replies(scopes_of(agent, self.settings), prefix, limit)

    async def add(self, agent: Agent, shortcut: object, text: object, team: object) -> CannedReply:
        shortcut, text = check(shortcut, text)
        scope = self._scope(agent, team)
        try:
            return await self.store.add_canned(scope, shortcut, text, agent.id, utcnow())
        except ShortcutTaken:
            raise BadMessage("shortcut_taken", self._taken(shortcut, scope)) from None

    async def change(
        self, agent: Agent, reply_id: int, shortcut: object, text: object
    ) -> CannedReply:
        reply = await self._managed(agent, reply_id)
        shortcut, text = check(shortcut, text)
        try:
            changed = await self.store.update_canned(reply.id, shortcut, text, utcnow())
        except ShortcutTaken:
            raise BadMessage("shortcut_taken", self._taken(shortcut, reply.scope)) from None
        if changed is None:
            raise NotFound("No such canned reply.")
        return changed

    async def delete(self, agent: Agent, reply_id: int) -> None:
        reply = await self._managed(agent, reply_id)
        await self.store.delete_canned(reply.id)

    async def for_conversation(
        self, agent: Agent, conversation_id: str, prefix: str
    ) -> list[Filled]:
        """The agent's replies starting with ``prefix``, filled in for this conversation."""
        conversation = await self.store.conversation(conversation_id)
        if conversation is None:
            raise NotFound("No such conversation.")
        customer = await self.store.customer(conversation.customer_id)
        handoff = await self.store.current_handoff(conversation_id)
        facts = (handoff.packet or {}).get("facts") if handoff is not None else None
        order = facts.get("order_number") if isinstance(facts, dict) else None
        values = {
            "customer_name": customer.display_name if customer else None,
            "order_number": str(order) if order else None,
            "agent_name": agent.display_name,
        }
        return [fill(reply, values) for reply in await self.usable(agent, prefix, MAX_OFFERED)]

    def _scope(self, agent: Agent, team: object) -> str:
        if team is None or team == "":
            return f"agent:{agent.id}"
        if not isinstance(team, str) or not self.settings.queue.knows(team):
            raise BadMessage("unknown_team", f"There is no team {team!r} in gateway.yml.")
        if agent.role != "supervisor":
            raise Forbidden("Only supervisors can add a team's canned replies.")
        return f"team:{team}"

    async def _managed(self, agent: Agent, reply_id: int) -> CannedReply:
        reply = await self.store.canned_reply(reply_id)
        if reply is None or reply.scope not in scopes_of(agent, self.settings):
            raise NotFound("No such canned reply.")
        if not may_manage(agent, reply.scope):
            raise Forbidden("Only supervisors can change a team's canned replies.")
        return reply

    @staticmethod
    def _taken(shortcut: str, scope: str) -> str:
        whose = "yours" if scope.startswith("agent:") else f"the team {scope[5:]}"
        return f"/{shortcut} is already one of {whose} canned replies; choose another shortcut."


def fill(reply: CannedReply, values: dict[str, str | None]) -> Filled:
    missing: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        if values[name]:
            return str(values[name])
        missing.append(name)
        return "[" + name.replace("_", " ") + "]"

    return Filled(reply, PLACEHOLDER_RE.sub(value, reply.text), missing)
