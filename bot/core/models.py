"""The engine's records: customers, conversations, handoffs, agents, notes, ratings, outbox.

Plain frozen dataclasses, as the store reads and writes them and the rest of the gateway passes
them around. They hold no behaviour and know nothing of SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.core.state import ConversationState
from bot.core.types import Attachment, Button, SenderKind, StoredMessage

__all__ = [
    "Agent",
    "Conversation",
    "CsatRating",
    "Customer",
    "Handoff",
    "Identity",
    "MessageNlu",
    "Note",
    "OutboundDraft",
    "OutboxItem",
    "PendingTurn",
    "QueueRow",
]


@dataclass(frozen=True)
class Customer:
    """A person talking to us, on one or more channels (see :class:`Identity`)."""

    id: str
    display_name: str | None
    email: str | None
    vip: bool
    created_at: datetime
    # Who the customer proved to be, in the shop's own ids; None until verified. VIP and the
    # shop's name for them count only for a verified customer.
    verified_id: str | None = None
    verified_by: str | None = None
    verified_at: datetime | None = None


@dataclass(frozen=True)
class Identity:
    """One channel's id for a customer (a Telegram chat id, a webchat visitor id, ...)."""

    channel: str
    channel_user_id: str
    # "agent:<id>": an agent linked it by hand, so it is not trusted as verified.
    linked_by: str | None = None


@dataclass(frozen=True)
class Conversation:
    """A conversation with one customer on one channel identity.

    ``version`` increases by one on every :meth:`Store.update_conversation`; pass the version
    you read as ``expected_version`` to update safely.
    """

    id: str
    customer_id: str
    channel: str
    channel_user_id: str
    state: ConversationState
    version: int
    team: str | None
    priority: str
    assigned_agent_id: int | None
    awaiting_csat: bool
    bot_cursor: int
    created_at: datetime
    updated_at: datetime
    # A handoff a bot turn decided that has not started yet (normally None).
    handoff_due: dict[str, Any] | None = None
    # Whom this conversation is verified as, how and when (bot/core/identity.py).
    verified_id: str | None = None
    verified_by: str | None = None
    verified_at: datetime | None = None
    # What the routing rule asked of the agent (handoff/routing.py).
    language: str | None = None
    required_skills: list[str] | None = None
    # The survey question the customer is being asked after a resolve (csat, ces or nps).
    awaiting_survey: str | None = None


@dataclass(frozen=True)
class Handoff:
    """One request for a human: who asked, why, for which team, and how it went."""

    id: int
    conversation_id: str
    packet: dict[str, Any]
    reason: str
    team: str
    priority: str
    requested_at: datetime
    assigned_at: datetime | None
    first_agent_reply_at: datetime | None
    resolved_at: datetime | None
    agent_id: int | None
    # The customer's last understood intent before the handoff (None: none understood).
    intent: str | None = None
    # The agent's wrap-up at resolve: what the problem really was (queue.dispositions), and
    # whether the bot should have handled it (docs/metrics.md, docs/bot-design.md).
    disposition: str | None = None
    bot_should_have_handled: bool | None = None


@dataclass(frozen=True)
class Agent:
    """A human agent (or admin) of the console."""

    id: int
    username: str
    display_name: str
    password_hash: str
    role: str
    teams: list[str]
    created_at: datetime
    # Console sessions issued under an older version are over (logout, password change).
    session_version: int = 0
    # Routing: what the agent can take (skills, languages), how many conversations may be
    # pushed to them at once, and whether they want any (online / away / offline).
    skills: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    capacity: int = 3
    availability: str = "online"
    last_assigned_at: datetime | None = None


@dataclass(frozen=True)
class CannedReply:
    """A saved answer an agent types as ``/shortcut``; ``scope`` is ``team:<name>`` or
    ``agent:<id>`` (one agent's own)."""

    id: int
    scope: str
    shortcut: str
    text: str
    created_by: int | None
    updated_at: datetime


@dataclass(frozen=True)
class SlaClock:
    """A service-level clock of a handoff (first_response, next_response or resolution)."""

    id: int
    conversation_id: str
    handoff_id: int
    kind: str
    team: str
    started_at: datetime
    warn_at: datetime
    due_at: datetime
    next_check_at: datetime | None
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    stopped_at: datetime | None = None


@dataclass(frozen=True)
class Note:
    """An internal note an agent left on a conversation (never shown to the customer)."""

    id: int
    conversation_id: str
    agent_id: int
    agent_name: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class CsatRating:
    """A customer-satisfaction rating, 1 (bad) to 5 (great)."""

    id: int
    conversation_id: str
    handoff_id: int | None
    rating: int
    created_at: datetime


@dataclass(frozen=True)
class OutboxItem:
    """One outbound message waiting for (or done with) delivery to its channel.

    ``attempts`` counts failed delivery attempts. An item is pending while neither
    ``delivered_at`` nor ``gave_up_at`` is set; a worker holds it while ``leased_until`` is in
    the future.
    """

    id: int
    message_id: int
    conversation_id: str
    channel: str
    attempts: int
    next_attempt_at: datetime
    leased_until: datetime | None
    delivered_at: datetime | None
    gave_up_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class QualityAlert:
    """Many more customers than usual wrote about one problem in one hour."""

    id: int
    problem: str
    hour: datetime
    contacts: int
    baseline: float  # the problem's usual contacts per hour
    p_value: float
    created_at: datetime
    acknowledged_by: int | None = None
    acknowledged_at: datetime | None = None


@dataclass(frozen=True)
class StoredFile:
    """An uploaded picture or file (its bytes are in the file storage under ``id``)."""

    id: str
    name: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: str  # "customer" or "agent"
    created_at: datetime


@dataclass(frozen=True)
class OutboundDraft:
    """A message to store (and maybe queue for a channel) before it has a seq."""

    sender_kind: SenderKind
    text: str
    sender_name: str | None = None
    buttons: tuple[Button, ...] = ()
    payload: str | None = None
    attachment: Attachment | None = None


@dataclass(frozen=True)
class MessageNlu:
    """What NLU made of a stored customer message."""

    message_id: int
    intent: str | None
    confidence: float | None


@dataclass(frozen=True)
class PendingTurn:
    """A conversation, its customer's display name, its unanswered customer messages and the
    customer's recent turns up to the first of them (see Store.pending_turn)."""

    conversation: Conversation
    customer_name: str | None
    pending: list[StoredMessage]
    recent: list[StoredMessage] = field(default_factory=list)
    # The shop's id of the customer when verified, and how (see bot/core/identity.py).
    customer_verified_id: str | None = None
    customer_verified_by: str | None = None
    # Who linked this conversation's identity by hand (see Identity.linked_by).
    identity_linked_by: str | None = None


@dataclass(frozen=True)
class QueueRow:
    """One conversation as the console's queue view shows it (see Store.queue_rows)."""

    conversation: Conversation
    customer_name: str | None
    handoff_requested_at: datetime | None
    reason_text: str | None
    agent_name: str | None
    last_customer_text: str | None


@dataclass(frozen=True)
class InboxFilter:
    """What the console's inbox shows (bot/store/search.py): every field optional; ``text`` is
    searched in messages and notes."""

    text: str | None = None
    states: tuple[str, ...] = ()
    team: str | None = None
    channel: str | None = None
    agent_id: int | None = None
    rating: int | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class InboxRow:
    conversation: Conversation
    customer_name: str | None
    agent_name: str | None
    reason: str | None
    rating: int | None
    last_text: str | None
