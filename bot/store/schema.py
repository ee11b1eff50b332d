"""Column types and tables of the conversation record (``metadata``).

The schema is owned by the alembic migrations in ``bot/store/migrations``; these tables mirror
them and are only used to build queries (a test checks that both agree).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

__all__ = [
    "BigIntId",
    "JSONType",
    "UTCDateTime",
    "UUIDHex",
    "agents",
    "audit",
    "aware",
    "canned_replies",
    "conversation_reads",
    "conversations",
    "csat",
    "customers",
    "files",
    "handoffs",
    "identities",
    "messages",
    "metadata",
    "new_id",
    "notes",
    "outbox",
    "outside_search",
    "quality_alerts",
    "sla_clocks",
    "survey_answers",
]


# Full-text search lives outside these tables (migration 0009): FTS5 tables (and their
# shadow tables) on SQLite, expression indexes on PostgreSQL. Schema comparisons skip them.
SEARCH_TABLES = ("messages_fts", "notes_fts")
SEARCH_INDEXES = ("ix_messages_text_search", "ix_notes_text_search")


def outside_search(obj: object, name: str | None, type_: str, *_: object) -> bool:
    """An alembic ``include_object``: False for the search tables and indexes."""
    if type_ == "table" and name and name.startswith(SEARCH_TABLES):
        return False
    return not (type_ == "index" and name in SEARCH_INDEXES)


def aware(value: datetime, name: str) -> datetime:
    """``value`` in UTC; ValueError for naive datetimes (whose zone we could only guess)."""
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, not {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} is a naive datetime {value!r}: pass a timezone-aware one")
    return value.astimezone(UTC)


def new_id() -> str:
    """A new id for a customer or a conversation (a :data:`UUIDHex`)."""
    return uuid.uuid4().hex


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones and SQLAlchemy drops them, so
    there we store naive UTC and re-attach UTC when reading. Naive datetimes are rejected
    rather than guessed at.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = aware(value, "timestamp")
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONType = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
# SQLite only autoincrements an INTEGER PRIMARY KEY, so big ids are plain INTEGER there.
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UUIDHex = sa.String(32)


def _partial_index(name: str, *columns: str, where: str, unique: bool = False) -> sa.Index:
    """An index of only the rows that match ``where`` (on SQLite and PostgreSQL alike)."""
    return sa.Index(
        name,
        *columns,
        unique=unique,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _conversation_table(name: str, *columns: sa.Column[Any] | sa.Constraint | sa.Index) -> sa.Table:
    """A table of rows that belong to a conversation: an integer id, the conversation's id
    (indexed), then ``columns``."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "conversation_id",
            UUIDHex,
            sa.ForeignKey("conversations.id"),
            nullable=False,
            index=True,
        ),
        *columns,
    )


customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", UUIDHex, primary_key=True),
    sa.Column("display_name", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("vip", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Who the customer proved to be, in the shop's ids (see 0005): the shop vouched for a
    # signed-in visitor ("shop") or the bot's second factor succeeded ("second_factor").
    sa.Column("verified_id", sa.String(255)),
    sa.Column("verified_by", sa.String(32)),
    sa.Column("verified_at", UTCDateTime),
    sa.Index(None, "verified_id", unique=True),
)

identities = sa.Table(
    "identities",
    metadata,
    # The primary key makes (channel, channel_user_id) unique: one customer per channel user.
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("channel_user_id", sa.String(255), primary_key=True),
    sa.Column("customer_id", UUIDHex, sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # "agent:<id>" when an agent linked it by hand (not trusted as verified; see 0013).
    sa.Column("linked_by", sa.String(64)),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(255), nullable=False, unique=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.String(32), nullable=False, server_default="agent"),
    sa.Column("teams", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("session_version", sa.Integer, nullable=False, server_default="0"),
    # Routing (see 0006 and handoff/routing.py).
    sa.Column("skills", JSONType, nullable=False, server_default="[]"),
    sa.Column("languages", JSONType, nullable=False, server_default="[]"),
    sa.Column("capacity", sa.Integer, nullable=False, server_default="3"),
    sa.Column("availability", sa.String(16), nullable=False, server_default="online"),
    sa.Column("last_assigned_at", UTCDateTime),
)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", UUIDHex, primary_key=True),
    sa.Column("customer_id", UUIDHex, sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("channel_user_id", sa.String(255), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("team", sa.Text),
    sa.Column("priority", sa.String(32), nullable=False),
    sa.Column("assigned_agent_id", sa.Integer, sa.ForeignKey("agents.id")),
    sa.Column("awaiting_csat", sa.Boolean, nullable=False, server_default=sa.false()),
    # The survey question being asked (csat, ces, nps; NULL with awaiting_csat: csat) (0015).
    sa.Column("awaiting_survey", sa.String(8)),
    sa.Column("bot_cursor", sa.Integer, nullable=False, server_default=sa.text("0")),
    # Highest message seq handed out so far; bumping it is how appenders take turns.
    sa.Column("last_seq", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # A handoff decided by a bot turn and not started yet (HandoffDecision as JSON); see 0003.
    sa.Column("handoff_due", JSONType),
    # Whom this conversation is verified as (see 0005 and bot/core/identity.py).
    sa.Column("verified_id", sa.String(255)),
    sa.Column("verified_by", sa.String(32)),
    sa.Column("verified_at", UTCDateTime),
    # What the routing rule asked for (see 0006).
    sa.Column("language", sa.String(16)),
    sa.Column("required_skills", JSONType),
    sa.Index(None, "channel", "channel_user_id", "created_at"),
    sa.Index(None, "assigned_agent_id"),
    sa.Index(None, "state", "created_at"),
    # The dashboard counts conversations by when they were opened (see 0008).
    sa.Index(None, "created_at", "last_seq"),
    # The inbox lists them by their latest activity (see 0009).
    sa.Index(None, "updated_at"),
    # The sweep for due handoffs reads only the (normally zero) rows that have one.
    _partial_index("ix_conversations_handoff_due", "updated_at", where="handoff_due IS NOT NULL"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", UUIDHex, sa.ForeignKey("conversations.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("sender_kind", sa.String(16), nullable=False),
    sa.Column("sender_name", sa.Text),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("buttons", JSONType, nullable=False),
    sa.Column("payload", sa.Text),
    sa.Column("intent", sa.Text),
    sa.Column("confidence", sa.Float),
    sa.Column("channel_message_id", sa.String(255)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # A picture or file with the message (bot.core.types.Attachment.stored()); NULL: none.
    sa.Column("attachment", JSONType),
    sa.UniqueConstraint("conversation_id", "seq"),
    # Dedupe key for inbound messages; partial so outbound ids and NULLs are not constrained.
    _partial_index(
        "uq_messages_inbound_channel_message_id",
        "conversation_id",
        "channel_message_id",
        where="direction = 'in' AND channel_message_id IS NOT NULL",
        unique=True,
    ),
    # Customer messages by time: the dashboard's NLU figures, quality alerts, the designers'
    # export (0014).
    # A plain index on the time: a partial covering one (direction = 'in', with the
    # conversation) made PostgreSQL scan it whole for the customer-repeated rate.
    sa.Index("ix_messages_created_at", "created_at"),
)

handoffs = _conversation_table(
    "handoffs",
    sa.Column("packet", JSONType, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("team", sa.Text, nullable=False),
    sa.Column("priority", sa.String(32), nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("assigned_at", UTCDateTime),
    sa.Column("first_agent_reply_at", UTCDateTime),
    sa.Column("resolved_at", UTCDateTime),
    sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id")),
    # The customer's last understood intent before the handoff; the agent's wrap-up (0013).
    sa.Column("intent", sa.Text),
    sa.Column("disposition", sa.Text),
    sa.Column("bot_should_have_handled", sa.Boolean),
    # The dashboard reads handoffs by when they were requested (see 0008).
    sa.Index(None, "requested_at"),
)

# Each running service-level clock of a handoff, as deadlines (see 0007 and handoff/sla.py).
sla_clocks = _conversation_table(
    "sla_clocks",
    sa.Column("handoff_id", sa.Integer, sa.ForeignKey("handoffs.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("team", sa.Text, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("warn_at", UTCDateTime, nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("next_check_at", UTCDateTime),
    sa.Column("warned_at", UTCDateTime),
    sa.Column("breached_at", UTCDateTime),
    sa.Column("stopped_at", UTCDateTime),
    sa.UniqueConstraint("handoff_id", "kind"),
    # The sweep reads only the clocks with something due, however many conversations are open.
    _partial_index(
        "ix_sla_clocks_next_check_at", "next_check_at", where="next_check_at IS NOT NULL"
    ),
)

notes = _conversation_table(
    "notes",
    sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

csat = _conversation_table(
    "csat",
    sa.Column("handoff_id", sa.Integer, sa.ForeignKey("handoffs.id")),
    sa.Column("rating", sa.SmallInteger, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
)

# CES and NPS answers (0015); the 1-5 ratings stay in csat.
survey_answers = _conversation_table(
    "survey_answers",
    sa.Column("handoff_id", sa.Integer, sa.ForeignKey("handoffs.id")),
    sa.Column("customer_id", UUIDHex, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "customer_id", "kind"),
    sa.Index(None, "handoff_id"),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    # No foreign key: the audit trail may mention conversations that were never stored.
    sa.Column("conversation_id", UUIDHex, index=True),
    sa.Column("details", JSONType),
)

conversation_reads = sa.Table(
    "conversation_reads",
    metadata,
    sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), primary_key=True),
    sa.Column("conversation_id", UUIDHex, sa.ForeignKey("conversations.id"), primary_key=True),
    sa.Column("last_read_seq", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

quality_alerts = sa.Table(
    "quality_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("problem", sa.Text, nullable=False),
    sa.Column("hour", UTCDateTime, nullable=False),
    sa.Column("contacts", sa.Integer, nullable=False),
    sa.Column("baseline", sa.Float, nullable=False),
    sa.Column("p_value", sa.Float, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("acknowledged_by", sa.Integer, sa.ForeignKey("agents.id")),
    sa.Column("acknowledged_at", UTCDateTime),
    sa.UniqueConstraint("problem", "hour"),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("id", UUIDHex, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("uploaded_by", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

canned_replies = sa.Table(
    "canned_replies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("scope", sa.String(80), nullable=False),
    sa.Column("shortcut", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("agents.id"), nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("scope", "shortcut"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    # One item per message: a message is queued for its channel at most once.
    sa.Column("message_id", BigIntId, sa.ForeignKey("messages.id"), nullable=False, unique=True),
    sa.Column("conversation_id", UUIDHex, sa.ForeignKey("conversations.id"), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("leased_until", UTCDateTime),
    sa.Column("delivered_at", UTCDateTime),
    sa.Column("gave_up_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    # A conversation's items in order (outbox_items, and the claim's "anything older?" check).
    sa.Index(None, "conversation_id", "id"),
    # Pending items only, so claiming stays cheap however many delivered rows pile up.
    _partial_index("ix_outbox_pending", "id", where="delivered_at IS NULL AND gave_up_at IS NULL"),
)
