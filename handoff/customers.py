"""Customer profiles: one person across channels, for the console's customer page.

A profile is everything the record knows of one customer: their channel identities, every
conversation with its handoffs, resolutions and ratings, the agents' notes, and (for a
customer verified as one of the shop's) their orders, devices and repairs, read from the same
backend the bot's actions use (``backend:`` in gateway.yml; one read-only API, not a copy).

Agents link two channels of one person by hand until the person verifies on both (then the
gateway merges them itself, bot/store/customers.py ``verify_customer``), and unlink a wrong
link; both are in the audit trail.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import structlog

from bot.config import Settings
from bot.core.errors import BadMessage, NotFound
from bot.core.models import Agent
from bot.core.types import is_text
from bot.rasa_client import RasaClient
from bot.store import Store

log = structlog.get_logger(__name__)

CHANNELS = ("webchat", "telegram", "slack", "rest")
MAX_CONVERSATIONS = 100  # on the page; the inbox lists everything


class CustomerProfiles:
    def __init__(self, store: Store, settings: Settings, rasa: RasaClient) -> None:
        self.store, self.settings = store, settings
        self.session = rasa.session  # the gateway's one HTTP client session

    async def profile(self, customer_id: str) -> dict[str, Any]:
        customer = await self.store.customer(customer_id)
        if customer is None:
            raise NotFound(f"no customer {customer_id}")
        names: dict[int, str] = {}

        async def agent_name(agent_id: int | None) -> str | None:
            if agent_id is None:
                return None
            if agent_id not in names:
                agent = await self.store.agent(agent_id)
                names[agent_id] = agent.display_name if agent else "another agent"
            return names[agent_id]

        conversations = []
        notes: list[dict[str, Any]] = []
        ratings: list[int] = []
        found = await self.store.conversations_for_customer(customer_id)
        for conversation in found[:MAX_CONVERSATIONS]:
            by_handoff = {
                r.handoff_id: r.rating for r in await self.store.csat_for(conversation.id)
            }
            ratings.extend(by_handoff.values())
            handoffs = [
                {
                    "reason": h.reason,
                    "team": h.team,
                    "requested_at": h.requested_at.isoformat(),
                    "resolved_at": h.resolved_at.isoformat() if h.resolved_at else None,
                    "agent": await agent_name(h.agent_id),
                    "rating": by_handoff.get(h.id),
                }
                for h in await self.store.handoffs_for_conversation(conversation.id)
            ]
            conversations.append(
                {
                    "id": conversation.id,
                    "channel": conversation.channel,
                    "channel_user_id": conversation.channel_user_id,
                    "state": conversation.state.value,
                    "created_at": conversation.created_at.isoformat(),
                    "updated_at": conversation.updated_at.isoformat(),
                    "handoffs": handoffs,
                }
            )
            notes.extend(
                {
                    "conversation_id": conversation.id,
                    "agent_name": n.agent_name,
                    "text": n.text,
                    "created_at": n.created_at.isoformat(),
                }
                for n in await self.store.notes(conversation.id)
            )
        notes.sort(key=lambda n: n["created_at"], reverse=True)
        backend = await self.backend(customer.verified_id)
        shop = backend.get("customer") if backend["status"] == "ok" else None
        return {
            "customer": {
                "id": customer.id,
                # A shop-signed visitor may have no name yet: the shop's record has it.
                "display_name": customer.display_name or (shop or {}).get("name"),
                "verified_id": customer.verified_id,
                "verified_by": customer.verified_by,
                "vip": bool(customer.vip and customer.verified_id),
                "created_at": customer.created_at.isoformat(),
            },
            "identities": [
                {
                    "channel": i.channel,
                    "channel_user_id": i.channel_user_id,
                    "linked_by_hand": i.linked_by is not None,
                }
                for i in await self.store.identities(customer_id)
            ],
            "conversations": conversations,
            "more_conversations": max(0, len(found) - MAX_CONVERSATIONS),
            "notes": notes,
            "ratings": {
                "count": len(ratings),
                "average": round(sum(ratings) / len(ratings), 2) if ratings else None,
            },
            "backend": backend,
        }

    async def backend(self, verified_id: str | None) -> dict[str, Any]:
        """The shop's view of a verified customer: ``{"status": "ok", ...the overview}``, or
        ``{"status": <why not>, "message": ...}`` (never raises: the page shows the rest)."""
        config = self.settings.backend
        if verified_id is None:
            return {
                "status": "not_verified",
                "message": "Not verified: orders and devices show once the customer proves "
                "who they are (signed in to the shop, or the bot's check).",
            }
        if not config.url:
            return {"status": "off", "message": "No shop backend is configured (backend.url)."}
        if not verified_id.isdigit():
            return {"status": "unknown", "message": f"The shop has no customer {verified_id}."}
        url = f"{config.url.rstrip('/')}/backend/customers/{verified_id}"
        try:
            async with self.session.get(
                url,
                params={"token": config.token or ""},
                timeout=aiohttp.ClientTimeout(total=config.timeout_seconds),
            ) as resp:
                if resp.status == 404:
                    return {
                        "status": "unknown",
                        "message": f"The shop has no customer {verified_id}.",
                    }
                if resp.status != 200:
                    raise aiohttp.ClientError(f"HTTP {resp.status}")
                body = await resp.json()
                if not isinstance(body, dict):
                    raise ValueError("the shop backend's answer is not a JSON object")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("shop backend unavailable", error=str(exc) or type(exc).__name__)
            return {
                "status": "unavailable",
                "message": "The shop's records could not be read just now; reload to try again.",
            }
        return {"status": "ok", **body}

    async def link(
        self, agent: Agent, customer_id: str, channel: object, channel_user_id: object
    ) -> dict[str, Any]:
        """Link a channel identity (one that has written before) to this customer, with its
        conversations; audited. Returns the profile."""
        channel, user = _identity(channel, channel_user_id)
        previous = await self.store.move_identity(channel, user, customer_id, f"agent:{agent.id}")
        await self.store.audit(
            f"agent:{agent.id}",
            "identity_linked",
            details={
                "customer_id": customer_id,
                "channel": channel,
                "channel_user_id": user,
                "from_customer_id": previous,
            },
        )
        return await self.profile(customer_id)

    async def unlink(
        self, agent: Agent, customer_id: str, channel: object, channel_user_id: object
    ) -> dict[str, Any]:
        """Give one of the customer's identities a customer of its own again; audited."""
        channel, user = _identity(channel, channel_user_id)
        try:
            new_customer = await self.store.detach_identity(customer_id, channel, user)
        except ValueError as exc:
            raise BadMessage("only_identity", str(exc).capitalize() + ".") from None
        await self.store.audit(
            f"agent:{agent.id}",
            "identity_unlinked",
            details={
                "customer_id": customer_id,
                "channel": channel,
                "channel_user_id": user,
                "to_customer_id": new_customer,
            },
        )
        return await self.profile(customer_id)


def _identity(channel: object, channel_user_id: object) -> tuple[str, str]:
    if channel not in CHANNELS:
        raise BadMessage("bad_request", f"channel must be one of {', '.join(CHANNELS)}.")
    if (
        not isinstance(channel_user_id, str)
        or not channel_user_id.strip()
        or not is_text(channel_user_id)
    ):
        raise BadMessage("bad_request", "channel_user_id is missing: the customer's id there.")
    user = channel_user_id.strip()
    if len(user) > 255:
        raise BadMessage("bad_request", "channel_user_id is too long (255 characters at most).")
    return str(channel), user
