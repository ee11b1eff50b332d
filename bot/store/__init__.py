"""The conversation record in SQL: customers, conversations, messages, handoffs and the rest.

Customers and their channel identities, conversations, messages, handoffs, agents, notes,
CSAT ratings and the audit trail live in one database reached through SQLAlchemy 2 Core:

* SQLite (``sqlite:///var/gateway.sqlite3``, the default) for a single gateway process. Its
  statements run right on the event loop's thread through the standard ``sqlite3`` driver: a
  transaction here is a few small indexed statements that take tens of microseconds, which
  is far cheaper than handing every DB-API call to a worker thread and back (what aiosqlite
  does; measured in docs/performance.md). Another process's write lock blocks the loop for at
  most SQLITE_LOOP_BLOCK_MS per attempt (see :meth:`Store._begin_inline`); WAL checkpoints and
  sweeps over many conversations run in a worker thread.
* PostgreSQL (``postgresql://user:pass@host/db``, driven by asyncpg through SQLAlchemy's asyncio
  API) when several processes share the record.

The schema is owned by the alembic migrations in ``bot/store/migrations``; :meth:`Store.migrate`
brings a database up to date. The tables below mirror those migrations and are only used to build
queries (a test checks that both agree).

Concurrency rules the rest of the gateway relies on:

* conversations are updated by compare-and-set on ``version`` (:class:`StaleVersion` on a race);
* message sequence numbers are 1, 2, 3, ... per conversation with no gaps or duplicates, however
  many coroutines or processes append at once;
* an inbound message is stored at most once per ``channel_message_id`` and conversation;
* an outbox item is leased by one worker at a time, and only the oldest undelivered items of a
  conversation are handed out, so two gateway processes never deliver out of order or twice
  at once (see :meth:`Store.outbox_claim`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from bot.core.errors import DuplicateAgent, DuplicateMessage, NotFound, StaleVersion, StoreError
from bot.core.models import (
    Agent,
    Conversation,
    CsatRating,
    Customer,
    Handoff,
    Identity,
    MessageNlu,
    Note,
    OutboundDraft,
    OutboxItem,
    PendingTurn,
    QueueRow,
)
from bot.core.state import ConversationState
from bot.core.types import Button, Direction, SenderKind, StoredMessage

__all__ = ["DEFAULT_URL", "Store", "alembic_config", "metadata"]

DEFAULT_URL = "sqlite:///var/gateway.sqlite3"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# How long an SQLite writer waits for another process's write lock before giving up (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000
# How long one SQLite call may block the event loop waiting for a lock (ms); past that the
# transaction is retried after an asyncio sleep, until SQLITE_BUSY_TIMEOUT_MS.
SQLITE_LOOP_BLOCK_MS = 20
# How often the background thread checkpoints SQLite's write-ahead log into the database (s).
SQLITE_CHECKPOINT_INTERVAL_S = 1.0
# Execution option that marks write transactions; on SQLite they start with BEGIN IMMEDIATE.
_WRITE_OPTION = "csbot_write"
# Arbitrary constant key for the PostgreSQL advisory lock that serialises concurrent migrations.
_MIGRATION_LOCK_KEY = 0x6373626F74  # "csbot"
# Key of the PostgreSQL advisory lock that lets one outbox claim run at a time (see outbox_claim).
_OUTBOX_CLAIM_LOCK_KEY = 0x6373626F746F62  # "csbotob"
# last_error is kept to this many characters.
_MAX_ERROR_CHARS = 2000


# ---------------------------------------------------------------------------------------------
# Public records and errors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claimed:
    conversation: Conversation
    last_seq: int


# ---------------------------------------------------------------------------------------------
# Column types and tables (must match bot/store/migrations)
# ---------------------------------------------------------------------------------------------


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
        value = _aware(value, "timestamp")
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

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", UUIDHex, primary_key=True),
    sa.Column("display_name", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("vip", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

identities = sa.Table(
    "identities",
    metadata,
    # The primary key makes (channel, channel_user_id) unique: one customer per channel user.
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("channel_user_id", sa.String(255), primary_key=True),
    sa.Column("customer_id", UUIDHex, sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
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
    sa.Column("bot_cursor", sa.Integer, nullable=False, server_default=sa.text("0")),
    # Highest message seq handed out so far; bumping it is how appenders take turns.
    sa.Column("last_seq", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # A handoff decided by a bot turn and not started yet (HandoffDecision as JSON); see 0003.
    sa.Column("handoff_due", JSONType),
    sa.Index(None, "channel", "channel_user_id", "created_at"),
    sa.Index(None, "state", "created_at"),
    # The sweep for due handoffs reads only the (normally zero) rows that have one.
    sa.Index(
        "ix_conversations_handoff_due",
        "updated_at",
        sqlite_where=sa.text("handoff_due IS NOT NULL"),
        postgresql_where=sa.text("handoff_due IS NOT NULL"),
    ),
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
    sa.UniqueConstraint("conversation_id", "seq"),
    # Dedupe key for inbound messages; partial so outbound ids and NULLs are not constrained.
    sa.Index(
        "uq_messages_inbound_channel_message_id",
        "conversation_id",
        "channel_message_id",
        unique=True,
        sqlite_where=sa.text("direction = 'in' AND channel_message_id IS NOT NULL"),
        postgresql_where=sa.text("direction = 'in' AND channel_message_id IS NOT NULL"),
    ),
)

handoffs = sa.Table(
    "handoffs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "conversation_id", UUIDHex, sa.ForeignKey("conversations.id"), nullable=False, index=True
    ),
    sa.Column("packet", JSONType, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("team", sa.Text, nullable=False),
    sa.Column("priority", sa.String(32), nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("assigned_at", UTCDateTime),
    sa.Column("first_agent_reply_at", UTCDateTime),
    sa.Column("resolved_at", UTCDateTime),
    sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id")),
)

notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "conversation_id", UUIDHex, sa.ForeignKey("conversations.id"), nullable=False, index=True
    ),
    sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

csat = sa.Table(
    "csat",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "conversation_id", UUIDHex, sa.ForeignKey("conversations.id"), nullable=False, index=True
    ),
    sa.Column("handoff_id", sa.Integer, sa.ForeignKey("handoffs.id")),
    sa.Column("rating", sa.SmallInteger, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
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
    sa.Index(
        "ix_outbox_pending",
        "id",
        sqlite_where=sa.text("delivered_at IS NULL AND gave_up_at IS NULL"),
        postgresql_where=sa.text("delivered_at IS NULL AND gave_up_at IS NULL"),
    ),
)

_CONVERSATION_CHANGES = frozenset(
    {
        "state",
        "team",
        "priority",
        "assigned_agent_id",
        "awaiting_csat",
        "bot_cursor",
        "handoff_due",
    }
)
_HANDOFF_CHANGES = frozenset(
    {"assigned_at", "first_agent_reply_at", "resolved_at", "agent_id", "packet", "team", "priority"}
)


# ---------------------------------------------------------------------------------------------
# Row -> record
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Statements of the bot's hot path, built once
# ---------------------------------------------------------------------------------------------
# Building a statement (coercing each operand, making bind parameters) costs SQLAlchemy more
# CPU than SQLite needs to run it; these run on every customer message, so they are built at
# import and executed with parameters. Bind names start with ``b_`` so that an UPDATE's
# parameters never name a column (which would add it to the SET clause).


def _b(name: str, type_: Any = None) -> sa.BindParameter[Any]:
    return sa.bindparam(f"b_{name}", type_=type_)


_SELECT_CONVERSATION = sa.select(conversations).where(conversations.c.id == _b("id"))
_BUMP_SEQ = (
    conversations.update()
    .where(conversations.c.id == _b("id"))
    .values(last_seq=conversations.c.last_seq + 1)
    .returning(conversations.c.last_seq)
)
_BUMP_SEQ_RETURNING_ALL = (
    conversations.update()
    .where(conversations.c.id == _b("id"))
    .values(last_seq=conversations.c.last_seq + 1)
    .returning(*conversations.c)
)
_FIND_INBOUND = sa.select(messages).where(
    messages.c.conversation_id == _b("id"),
    messages.c.channel_message_id == _b("channel_message_id"),
    messages.c.direction == Direction.INBOUND.value,
)
_INSERT_MESSAGE = messages.insert().returning(messages.c.id)
_INSERT_OUTBOX = outbox.insert()
_PENDING_CONVERSATION = (
    sa.select(conversations, customers.c.display_name.label("customer_name"))
    .join(customers, customers.c.id == conversations.c.customer_id)
    .where(conversations.c.id == _b("id"))
)
_PENDING_MESSAGES = (
    sa.select(messages)
    .where(
        messages.c.conversation_id == _b("id"),
        messages.c.seq > _b("after"),
        messages.c.direction == Direction.INBOUND.value,
    )
    .order_by(messages.c.seq)
)
_CAS_TURN = (
    conversations.update()
    .where(conversations.c.id == _b("id"), conversations.c.version == _b("version"))
    .values(
        version=conversations.c.version + 1,
        updated_at=_b("now"),
        bot_cursor=sa.case(
            (conversations.c.bot_cursor < _b("cursor"), _b("cursor", sa.Integer)),
            else_=conversations.c.bot_cursor,
        ),
        # A due handoff is only ever cleared by the change that starts it.
        handoff_due=sa.func.coalesce(_b("due", JSONType), conversations.c.handoff_due),
    )
    .returning(*conversations.c)
)
_CAS_TOUCH = (
    conversations.update()
    .where(conversations.c.id == _b("id"), conversations.c.version == _b("version"))
    .values(version=conversations.c.version + 1, updated_at=_b("now"))
    .returning(*conversations.c)
)
_SET_NLU = (
    messages.update()
    .where(messages.c.id == _b("id"))
    .values(intent=_b("intent"), confidence=_b("confidence"))
)
_LAST_RATING_PROMPT = (
    sa.select(sa.func.coalesce(sa.func.max(messages.c.seq), 0))
    .where(
        messages.c.conversation_id == _b("id"),
        messages.c.sender_kind == SenderKind.SYSTEM.value,
        messages.c.payload == "csat_request",
        messages.c.seq <= _b("upto"),
    )
    .scalar_subquery()
)
_RECENT_CUSTOMER_TURNS = (
    sa.select(messages)
    .where(
        messages.c.conversation_id == _b("id"),
        messages.c.sender_kind == SenderKind.CUSTOMER.value,
        messages.c.seq <= _b("upto"),
        messages.c.seq > _LAST_RATING_PROMPT,
    )
    .order_by(messages.c.seq.desc())
    .limit(_b("limit", sa.Integer))
)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime, name: str) -> datetime:
    """``value`` in UTC; ValueError for naive datetimes (whose zone we could only guess)."""
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, not {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} is a naive datetime {value!r}: pass a timezone-aware one")
    return value.astimezone(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def _customer(row: sa.Row[Any]) -> Customer:
    return Customer(
        id=row.id,
        display_name=row.display_name,
        email=row.email,
        vip=bool(row.vip),
        created_at=row.created_at,
    )


def _conversation(row: sa.Row[Any]) -> Conversation:
    return Conversation(
        id=row.id,
        customer_id=row.customer_id,
        channel=row.channel,
        channel_user_id=row.channel_user_id,
        state=ConversationState(row.state),
        version=row.version,
        team=row.team,
        priority=row.priority,
        assigned_agent_id=row.assigned_agent_id,
        awaiting_csat=bool(row.awaiting_csat),
        bot_cursor=row.bot_cursor,
        created_at=row.created_at,
        updated_at=row.updated_at,
        handoff_due=row.handoff_due,
    )


def _message(row: sa.Row[Any]) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        conversation_id=row.conversation_id,
        seq=row.seq,
        direction=Direction(row.direction),
        sender_kind=SenderKind(row.sender_kind),
        text=row.text,
        created_at=row.created_at,
        sender_name=row.sender_name,
        buttons=[Button(title=b["title"], payload=b["payload"]) for b in row.buttons or []],
        payload=row.payload,
        intent=row.intent,
        confidence=row.confidence,
        channel_message_id=row.channel_message_id,
    )


def _handoff(row: sa.Row[Any]) -> Handoff:
    return Handoff(
        id=row.id,
        conversation_id=row.conversation_id,
        packet=dict(row.packet),
        reason=row.reason,
        team=row.team,
        priority=row.priority,
        requested_at=row.requested_at,
        assigned_at=row.assigned_at,
        first_agent_reply_at=row.first_agent_reply_at,
        resolved_at=row.resolved_at,
        agent_id=row.agent_id,
    )


def _agent(row: sa.Row[Any]) -> Agent:
    return Agent(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        password_hash=row.password_hash,
        role=row.role,
        teams=list(row.teams),
        created_at=row.created_at,
    )


def _csat(row: sa.Row[Any]) -> CsatRating:
    return CsatRating(
        id=row.id,
        conversation_id=row.conversation_id,
        handoff_id=row.handoff_id,
        rating=row.rating,
        created_at=row.created_at,
    )


def _outbox_item(row: sa.Row[Any]) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        channel=row.channel,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        leased_until=row.leased_until,
        delivered_at=row.delivered_at,
        gave_up_at=row.gave_up_at,
        last_error=row.last_error,
    )


# ---------------------------------------------------------------------------------------------
# Engine and migrations
# ---------------------------------------------------------------------------------------------


def _normalize_url(url: str) -> sa.URL:
    """Parse ``url`` and pick the driver the store runs it with.

    SQLite always runs on the standard ``sqlite3`` driver (``sqlite+aiosqlite://`` URLs from
    older configurations are accepted and mean the same); PostgreSQL without a driver named
    (``postgresql://...``) gets asyncpg.
    """
    parsed = make_url(url)
    backend = "postgresql" if parsed.drivername == "postgres" else parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite")
    if backend != "postgresql":
        raise ValueError(f"unsupported database {parsed.drivername!r}: use SQLite or PostgreSQL")
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed


def _is_sqlite_memory(url: sa.URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _is_locked(exc: sa.exc.OperationalError | sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds a lock (SQLITE_BUSY)."""
    raw = exc.orig if isinstance(exc, sa.exc.OperationalError) else exc
    return isinstance(raw, sqlite3.OperationalError) and "locked" in str(raw)


def _install_sqlite_hooks(engine: sa.Engine, *, wal: bool) -> None:
    """Make SQLite behave under concurrent writers, on the event loop's thread.

    The driver's own transaction handling starts transactions lazily with a plain BEGIN; two
    such transactions that both read, then write, deadlock and one fails at once with
    "database is locked" whatever the busy timeout. So we switch the driver to autocommit and
    emit BEGIN ourselves: BEGIN IMMEDIATE for write transactions, which takes the write lock up
    front. WAL lets readers run alongside the writer. The busy timeout is short because a
    wait inside SQLite stops the event loop; :meth:`Store._begin_inline` does the longer wait
    for another process's lock without blocking. The write-ahead log is checkpointed by the
    store's background thread instead of by whichever commit happens to cross the threshold.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_LOOP_BLOCK_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if wal:
            cursor.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL still survives a crash of the process (kill -9): only a power
            # loss can drop the last commits. PostgreSQL is the store for production.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA wal_autocheckpoint = 0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        # Straight to the driver: this runs for every transaction, and SQLAlchemy's statement
        # machinery would cost more than the BEGIN itself.
        connection.connection.driver_connection.execute(  # type: ignore[union-attr]
            "BEGIN IMMEDIATE" if write else "BEGIN"
        )


def _checkpoint_wal(path: str) -> None:
    """Copy committed pages from SQLite's write-ahead log into the database file (in a thread).

    PASSIVE never waits for readers or writers: what it cannot copy now, the next run does.
    """
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


_T = TypeVar("_T")


class _Conn(Protocol):
    """What the store's queries use of a connection inside one transaction."""

    async def execute(
        self, statement: sa.Executable, parameters: Any = None
    ) -> sa.CursorResult[Any]: ...

    async def exec_driver_sql(self, statement: str) -> sa.CursorResult[Any]: ...

    async def run_sync(self, fn: Callable[[sa.Connection], _T]) -> _T: ...

    def begin_nested(self) -> contextlib.AbstractAsyncContextManager[Any]: ...


class _InlineConn:
    """A sync SQLite connection behind the async face the store's queries are written to.

    Calls run right away on the caller's thread: awaiting them never yields to the event loop.
    """

    def __init__(self, connection: sa.Connection) -> None:
        self._connection = connection

    async def execute(
        self, statement: sa.Executable, parameters: Any = None
    ) -> sa.CursorResult[Any]:
        return self._connection.execute(statement, parameters)

    async def exec_driver_sql(self, statement: str) -> sa.CursorResult[Any]:
        return self._connection.exec_driver_sql(statement)

    async def run_sync(self, fn: Callable[[sa.Connection], _T]) -> _T:
        return fn(self._connection)

    @contextlib.asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        with self._connection.begin_nested():
            yield


class _AsyncConn:
    """An asyncio connection (PostgreSQL through asyncpg) with the same face."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def execute(
        self, statement: sa.Executable, parameters: Any = None
    ) -> sa.CursorResult[Any]:
        return await self._connection.execute(statement, parameters)

    async def exec_driver_sql(self, statement: str) -> sa.CursorResult[Any]:
        return await self._connection.exec_driver_sql(statement)

    async def run_sync(self, fn: Callable[[sa.Connection], _T]) -> _T:
        return await self._connection.run_sync(fn)

    @contextlib.asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        async with self._connection.begin_nested():
            yield


def alembic_config(url: str | None = None) -> Config:
    """An alembic configuration for ``bot/store/migrations``, built without an alembic.ini.

    With ``url`` (e.g. for ``alembic`` commands run by hand) env.py connects by itself;
    :meth:`Store.migrate` instead hands env.py its open connection.
    """
    config = Config()
    # ConfigParser interpolates '%', so escape it in paths and URLs.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option(
            "sqlalchemy.url",
            _normalize_url(url).render_as_string(hide_password=False).replace("%", "%%"),
        )
    return config


def _upgrade_head(connection: sa.Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


class Store:
    """The conversation record. Create with :meth:`connect`, then :meth:`migrate` once.

    Every method runs in its own short transaction, so a Store may be shared by any number of
    concurrent tasks (of one event loop).
    """

    def __init__(
        self,
        engine: sa.Engine | AsyncEngine,
        *,
        serialize: bool = False,
        wal_path: str | None = None,
    ) -> None:
        """Wrap an engine made by :meth:`connect` (use that instead)."""
        self._engine = engine
        self._dialect = engine.dialect.name
        self._inline = isinstance(engine, sa.Engine)
        # An in-memory SQLite database lives in one shared connection, which concurrent tasks
        # must not use at the same time.
        self._serial: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if serialize else contextlib.nullcontext()
        )
        # SQLite lets one writer in at a time anyway. Queueing this process's writers here keeps
        # them from waiting inside SQLite (which would stop the event loop).
        self._writers: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock()
            if self._dialect == "sqlite" and not serialize
            else contextlib.nullcontext()
        )
        self._wal_path = wal_path
        self._commits = 0
        self._checkpointer: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, url: str = DEFAULT_URL) -> Store:
        """Open the database at ``url`` (creating an SQLite file's directory) and check it answers.

        ``sqlite:///path`` runs on the event loop through ``sqlite3``; ``postgresql://...``
        gets asyncpg.
        """
        parsed = _normalize_url(url)
        if parsed.get_backend_name() == "sqlite":
            memory = _is_sqlite_memory(parsed)
            if memory:
                engine = sa.create_engine(parsed, poolclass=StaticPool)
                store = cls(engine, serialize=True)
            else:
                assert parsed.database is not None
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                # Pooled connections are used by one caller at a time, mostly on the event
                # loop's thread and, for sweeps, in a worker thread.
                engine = sa.create_engine(
                    parsed,
                    pool_size=8,
                    max_overflow=32,
                    connect_args={"check_same_thread": False},
                )
                store = cls(engine, wal_path=parsed.database)
            _install_sqlite_hooks(engine, wal=not memory)
        else:
            store = cls(create_async_engine(parsed, pool_pre_ping=True))
        try:
            async with store._tx() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except BaseException:
            await store.close()
            raise
        if store._wal_path is not None:
            store._checkpointer = asyncio.create_task(
                store._checkpoint_loop(), name="sqlite-checkpoint"
            )
        return store

    async def migrate(self) -> None:
        """Bring the schema up to the newest migration (``alembic upgrade head``); idempotent."""
        async with self._tx(write=True) as conn:
            if self._dialect == "postgresql":
                # Two processes starting at once must not both create the tables.
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            await conn.run_sync(_upgrade_head)

    async def close(self) -> None:
        """Stop the checkpoint thread's loop, checkpoint once more, close pooled connections."""
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
            assert self._wal_path is not None
            with contextlib.suppress(sqlite3.Error):
                await asyncio.to_thread(_checkpoint_wal, self._wal_path)
        if isinstance(self._engine, sa.Engine):
            self._engine.dispose()
        else:
            await self._engine.dispose()

    async def _checkpoint_loop(self) -> None:
        """Checkpoint the WAL in a worker thread whenever something was committed."""
        assert self._wal_path is not None
        seen = 0
        while True:
            await asyncio.sleep(SQLITE_CHECKPOINT_INTERVAL_S)
            if self._commits == seen:
                continue
            seen = self._commits
            try:
                await asyncio.to_thread(_checkpoint_wal, self._wal_path)
            except sqlite3.Error:
                # The next round tries again; a WAL that is not checkpointed only grows.
                continue

    @contextlib.asynccontextmanager
    async def _tx(self, *, write: bool = False) -> AsyncIterator[_Conn]:
        """One transaction, committed on success and rolled back on any exception."""
        if isinstance(self._engine, sa.Engine):
            async with self._writers if write else contextlib.nullcontext(), self._serial:
                connection = await self._begin_inline(self._engine, write=write)
                with connection:
                    transaction = connection.get_transaction()
                    assert transaction is not None
                    try:
                        yield _InlineConn(connection)
                    except BaseException:
                        transaction.rollback()
                        raise
                    transaction.commit()
                    if write:
                        self._commits += 1
            return
        engine = self._engine.execution_options(**{_WRITE_OPTION: True}) if write else self._engine
        async with self._serial, engine.begin() as conn:
            yield _AsyncConn(conn)

    async def _begin_inline(self, engine: sa.Engine, *, write: bool) -> sa.Connection:
        """A pooled SQLite connection with its transaction begun (BEGIN IMMEDIATE to write).

        While another process holds the write lock, SQLite waits at most SQLITE_LOOP_BLOCK_MS
        inside BEGIN; then we sleep on the event loop and try again, for up to
        SQLITE_BUSY_TIMEOUT_MS in all, so other tasks carry on meanwhile.
        """
        options = {_WRITE_OPTION: True} if write else {}
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        pause = 0.005
        while True:
            connection = engine.connect().execution_options(**options)
            try:
                connection.begin()
                return connection
            except (sa.exc.OperationalError, sqlite3.OperationalError) as exc:
                # (BEGIN goes straight to the driver, so its errors come unwrapped.)
                connection.close()
                if not _is_locked(exc) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)

    async def _sweep(self, read: Callable[[sa.Connection], _T]) -> _T:
        """Run ``read`` in one read transaction. Sweeps over many conversations use this: on
        an SQLite file it runs in a worker thread (sqlite3 lets go of the GIL while a query
        runs), so a big database does not stop the event loop."""
        if isinstance(self._engine, sa.Engine) and self._wal_path is not None:
            engine = self._engine

            def run() -> _T:
                with engine.connect() as connection, connection.begin():
                    return read(connection)

            return await asyncio.to_thread(run)
        async with self._tx() as conn:
            return await conn.run_sync(read)

    # -- customers ------------------------------------------------------------------------

    async def find_or_create_customer(
        self, channel: str, channel_user_id: str, display_name: str | None = None
    ) -> Customer:
        """The customer behind a channel identity, created (with the identity) on first contact.

        A ``display_name`` fills in a customer that has none yet. Safe when several tasks or
        processes see the same new identity at once: all get the same customer.
        """
        async with self._tx() as conn:
            found = await self._customer_by_identity(conn, channel, channel_user_id)
        if found is not None and (display_name is None or found.display_name is not None):
            return found

        async with self._tx(write=True) as conn:
            if found is None:
                new = Customer(_new_id(), display_name, None, False, _now())
                try:
                    # Savepoint: on PostgreSQL a failed INSERT would otherwise abort the whole
                    # transaction, and we still want to read the winner's row.
                    async with conn.begin_nested():
                        await conn.execute(
                            customers.insert().values(
                                id=new.id,
                                display_name=new.display_name,
                                vip=new.vip,
                                created_at=new.created_at,
                            )
                        )
                        await conn.execute(
                            identities.insert().values(
                                channel=channel,
                                channel_user_id=channel_user_id,
                                customer_id=new.id,
                                created_at=new.created_at,
                            )
                        )
                    return new
                except IntegrityError:
                    # Another task created this identity between our read and our insert.
                    found = await self._customer_by_identity(conn, channel, channel_user_id)
                    if found is None:
                        raise
            if display_name is not None and found.display_name is None:
                await conn.execute(
                    customers.update()
                    .where(customers.c.id == found.id, customers.c.display_name.is_(None))
                    .values(display_name=display_name)
                )
                found = await self._customer_by_id(conn, found.id)
                assert found is not None
            return found

    async def customer(self, customer_id: str) -> Customer | None:
        """The customer with this id, or None."""
        async with self._tx() as conn:
            return await self._customer_by_id(conn, customer_id)

    async def identities(self, customer_id: str) -> list[Identity]:
        """The channel identities linked to a customer, oldest first."""
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(identities.c.channel, identities.c.channel_user_id)
                .where(identities.c.customer_id == customer_id)
                .order_by(identities.c.created_at, identities.c.channel)
            )
            return [Identity(row.channel, row.channel_user_id) for row in rows]

    async def link_identity(self, customer_id: str, channel: str, channel_user_id: str) -> None:
        """Make ``(channel, channel_user_id)`` belong to this customer.

        An identity already linked to another customer is moved over (its past conversations
        stay with the old customer). NotFound if the customer does not exist.
        """
        async with self._tx(write=True) as conn:
            if await self._customer_by_id(conn, customer_id) is None:
                raise NotFound(f"no customer {customer_id}")
            move = (
                identities.update()
                .where(
                    identities.c.channel == channel,
                    identities.c.channel_user_id == channel_user_id,
                )
                .values(customer_id=customer_id)
            )
            if (await conn.execute(move)).rowcount:
                return
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        identities.insert().values(
                            channel=channel,
                            channel_user_id=channel_user_id,
                            customer_id=customer_id,
                            created_at=_now(),
                        )
                    )
            except IntegrityError:
                # Created concurrently: it exists now, so move it.
                await conn.execute(move)

    async def _customer_by_id(self, conn: _Conn, customer_id: str) -> Customer | None:
        row = (
            await conn.execute(sa.select(customers).where(customers.c.id == customer_id))
        ).first()
        return None if row is None else _customer(row)

    async def _customer_by_identity(
        self, conn: _Conn, channel: str, channel_user_id: str
    ) -> Customer | None:
        row = (
            await conn.execute(
                sa.select(customers)
                .join(identities, identities.c.customer_id == customers.c.id)
                .where(
                    identities.c.channel == channel,
                    identities.c.channel_user_id == channel_user_id,
                )
            )
        ).first()
        return None if row is None else _customer(row)

    # -- conversations --------------------------------------------------------------------

    async def open_conversation(
        self, customer_id: str, channel: str, channel_user_id: str
    ) -> Conversation:
        """The customer's newest conversation on this identity (any state), else a new one.

        A new conversation starts in state BOT. Concurrent calls for the same customer all get
        the same conversation.
        """
        async with self._tx() as conn:
            found = await self._newest_conversation(conn, customer_id, channel, channel_user_id)
        if found is not None:
            return found
        async with self._tx(write=True) as conn:
            # Lock the customer row so concurrent first messages queue up here (PostgreSQL;
            # SQLite's BEGIN IMMEDIATE already lets one writer in at a time), then look again.
            locked = await conn.execute(
                sa.select(customers.c.id).where(customers.c.id == customer_id).with_for_update()
            )
            if locked.first() is None:
                raise NotFound(f"no customer {customer_id}")
            found = await self._newest_conversation(conn, customer_id, channel, channel_user_id)
            if found is not None:
                return found
            return await self._insert_conversation(conn, customer_id, channel, channel_user_id)

    async def create_conversation(
        self, customer_id: str, channel: str, channel_user_id: str
    ) -> Conversation:
        """A new conversation in state BOT, version 1. NotFound if the customer does not exist."""
        async with self._tx(write=True) as conn:
            if await self._customer_by_id(conn, customer_id) is None:
                raise NotFound(f"no customer {customer_id}")
            return await self._insert_conversation(conn, customer_id, channel, channel_user_id)

    async def conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation with this id, or None."""
        async with self._tx() as conn:
            row = (await conn.execute(_SELECT_CONVERSATION, {"b_id": conversation_id})).first()
            return None if row is None else _conversation(row)

    async def conversations_for_customer(self, customer_id: str) -> list[Conversation]:
        """All of a customer's conversations, on every channel, newest first."""
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(conversations)
                .where(conversations.c.customer_id == customer_id)
                .order_by(conversations.c.created_at.desc(), conversations.c.id.desc())
            )
            return [_conversation(row) for row in rows]

    async def conversations_in_states(
        self, states: Iterable[ConversationState]
    ) -> list[Conversation]:
        """All conversations in any of ``states``, oldest (by creation) first."""
        wanted = [ConversationState(s).value for s in states]
        if not wanted:
            return []
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(conversations)
                .where(conversations.c.state.in_(wanted))
                .order_by(conversations.c.created_at, conversations.c.id)
            )
            return [_conversation(row) for row in rows]

    async def update_conversation(
        self, conversation_id: str, expected_version: int, **changes: Any
    ) -> Conversation:
        """Apply ``changes`` if the conversation is still at ``expected_version``.

        ``changes`` may set state, team, priority, assigned_agent_id, awaiting_csat,
        bot_cursor and handoff_due (anything else: ValueError). The version goes up by one
        and updated_at is set to now, in one conditional UPDATE. Raises StaleVersion when
        someone else updated the conversation first, NotFound when it does not exist (or the
        assigned agent does not).
        """
        unknown = set(changes) - _CONVERSATION_CHANGES
        if unknown:
            raise ValueError(f"cannot update conversation fields {sorted(unknown)}")
        values = dict(changes)
        if "state" in values:
            values["state"] = ConversationState(values["state"]).value
        if "awaiting_csat" in values:
            values["awaiting_csat"] = bool(values["awaiting_csat"])
        values["version"] = conversations.c.version + 1
        values["updated_at"] = _now()
        stmt = (
            conversations.update()
            .where(
                conversations.c.id == conversation_id,
                conversations.c.version == expected_version,
            )
            .values(**values)
            .returning(*conversations.c)
        )
        try:
            async with self._tx(write=True) as conn:
                row = (await conn.execute(stmt)).first()
                if row is not None:
                    return _conversation(row)
                current = (
                    await conn.execute(
                        sa.select(conversations.c.version).where(
                            conversations.c.id == conversation_id
                        )
                    )
                ).scalar_one_or_none()
        except IntegrityError as exc:
            # The only foreign key among the changes.
            raise NotFound(f"no agent {changes.get('assigned_agent_id')}") from exc
        if current is None:
            raise NotFound(f"no conversation {conversation_id}")
        raise StaleVersion(
            f"conversation {conversation_id} is at version {current}, not {expected_version}"
        )

    async def _newest_conversation(
        self, conn: _Conn, customer_id: str, channel: str, channel_user_id: str
    ) -> Conversation | None:
        row = (
            await conn.execute(
                sa.select(conversations)
                .where(
                    conversations.c.channel == channel,
                    conversations.c.channel_user_id == channel_user_id,
                    conversations.c.customer_id == customer_id,
                )
                .order_by(conversations.c.created_at.desc(), conversations.c.id.desc())
                .limit(1)
            )
        ).first()
        return None if row is None else _conversation(row)

    async def _insert_conversation(
        self, conn: _Conn, customer_id: str, channel: str, channel_user_id: str
    ) -> Conversation:
        now = _now()
        new = Conversation(
            id=_new_id(),
            customer_id=customer_id,
            channel=channel,
            channel_user_id=channel_user_id,
            state=ConversationState.BOT,
            version=1,
            team=None,
            priority="normal",
            assigned_agent_id=None,
            awaiting_csat=False,
            bot_cursor=0,
            created_at=now,
            updated_at=now,
        )
        await conn.execute(
            conversations.insert().values(
                id=new.id,
                customer_id=new.customer_id,
                channel=new.channel,
                channel_user_id=new.channel_user_id,
                state=new.state.value,
                version=new.version,
                team=new.team,
                priority=new.priority,
                assigned_agent_id=new.assigned_agent_id,
                awaiting_csat=new.awaiting_csat,
                bot_cursor=new.bot_cursor,
                last_seq=0,
                created_at=new.created_at,
                updated_at=new.updated_at,
            )
        )
        return new

    async def _require_conversation(self, conn: _Conn, conversation_id: str) -> None:
        found = await conn.execute(
            sa.select(conversations.c.id).where(conversations.c.id == conversation_id)
        )
        if found.first() is None:
            raise NotFound(f"no conversation {conversation_id}")

    # -- messages -------------------------------------------------------------------------

    async def append_message(
        self,
        conversation_id: str,
        *,
        direction: Direction,
        sender_kind: SenderKind,
        text: str,
        sender_name: str | None = None,
        buttons: Sequence[Button] = (),
        payload: str | None = None,
        intent: str | None = None,
        confidence: float | None = None,
        channel_message_id: str | None = None,
    ) -> StoredMessage:
        """Store a message as the conversation's next seq (1, 2, 3, ... without gaps).

        An inbound message whose ``channel_message_id`` is already stored as an inbound
        message of this conversation raises DuplicateMessage (with the stored copy) and stores
        nothing. NotFound if the conversation does not exist.
        """
        async with self._tx(write=True) as conn:
            return await self._insert_message(
                conn,
                conversation_id,
                OutboundDraft(
                    sender_kind=sender_kind,
                    text=text,
                    sender_name=sender_name,
                    buttons=tuple(buttons),
                    payload=payload,
                ),
                direction=direction,
                intent=intent,
                confidence=confidence,
                channel_message_id=channel_message_id,
            )

    async def append_inbound(
        self,
        conversation_id: str,
        *,
        text: str,
        sender_name: str | None = None,
        payload: str | None = None,
        channel_message_id: str | None = None,
    ) -> tuple[Conversation, StoredMessage]:
        """Store a customer's message like :meth:`append_message`, and return the conversation
        as it is now (read in the same transaction, so no second read is needed)."""
        async with self._tx(write=True) as conn:
            claimed = await self._claim_seq(conn, conversation_id)
            message = await self._insert_message(
                conn,
                conversation_id,
                OutboundDraft(
                    sender_kind=SenderKind.CUSTOMER,
                    text=text,
                    sender_name=sender_name,
                    payload=payload,
                ),
                direction=Direction.INBOUND,
                channel_message_id=channel_message_id,
                seq=claimed.last_seq,
            )
            return claimed.conversation, message

    async def _claim_seq(self, conn: _Conn, conversation_id: str) -> _Claimed:
        """Claim the conversation's next seq by bumping its counter.

        On PostgreSQL the UPDATE row-locks the conversation until commit, so concurrent
        appenders queue here (on SQLite, BEGIN IMMEDIATE already did); a rollback gives the
        seq back.
        """
        row = (await conn.execute(_BUMP_SEQ_RETURNING_ALL, {"b_id": conversation_id})).first()
        if row is None:
            raise NotFound(f"no conversation {conversation_id}")
        return _Claimed(_conversation(row), row.last_seq)

    async def _insert_message(
        self,
        conn: _Conn,
        conversation_id: str,
        draft: OutboundDraft,
        *,
        direction: Direction,
        intent: str | None = None,
        confidence: float | None = None,
        channel_message_id: str | None = None,
        seq: int | None = None,
    ) -> StoredMessage:
        """Insert one message; ``seq`` is given when the caller already claimed it."""
        direction = Direction(direction)
        sender_kind = SenderKind(draft.sender_kind)
        if seq is None:
            # See _claim_seq; only the number is needed here.
            seq = (await conn.execute(_BUMP_SEQ, {"b_id": conversation_id})).scalar_one_or_none()
            if seq is None:
                raise NotFound(f"no conversation {conversation_id}")
        if direction is Direction.INBOUND and channel_message_id is not None:
            # Checked under the lock, so two deliveries of one message can't both pass.
            existing = await self._find_inbound(conn, conversation_id, channel_message_id)
            if existing is not None:
                raise DuplicateMessage(existing)
        created_at = _now()
        button_list = [Button(b.title, b.payload) for b in draft.buttons]
        message_id = (
            await conn.execute(
                _INSERT_MESSAGE,
                {
                    "conversation_id": conversation_id,
                    "seq": seq,
                    "direction": direction.value,
                    "sender_kind": sender_kind.value,
                    "sender_name": draft.sender_name,
                    "text": draft.text,
                    "buttons": [b.to_dict() for b in button_list],
                    "payload": draft.payload,
                    "intent": intent,
                    "confidence": confidence,
                    "channel_message_id": channel_message_id,
                    "created_at": created_at,
                },
            )
        ).scalar_one()
        return StoredMessage(
            id=message_id,
            conversation_id=conversation_id,
            seq=seq,
            direction=direction,
            sender_kind=sender_kind,
            text=draft.text,
            created_at=created_at,
            sender_name=draft.sender_name,
            buttons=button_list,
            payload=draft.payload,
            intent=intent,
            confidence=confidence,
            channel_message_id=channel_message_id,
        )

    async def append_outbound(
        self,
        conversation_id: str,
        drafts: Sequence[OutboundDraft],
        *,
        outbox_channel: str | None = None,
        expected_version: int | None = None,
        bot_cursor: int | None = None,
        nlu: MessageNlu | None = None,
        handoff_due: dict[str, Any] | None = None,
    ) -> tuple[Conversation | None, list[StoredMessage]]:
        """Store outbound messages, and queue them on ``outbox_channel``, in ONE transaction.

        With ``expected_version`` it is also a compare-and-set: the conversation's version goes
        up by one (and ``bot_cursor`` moves forward) only if it is still at that version, else
        StaleVersion and nothing is stored. So a crash can never leave a bot turn half done:
        either the replies are stored, queued and the customer's message marked handled, or
        none of it. ``nlu`` records what NLU made of the customer's message, and
        ``handoff_due`` (needs ``bot_cursor``) marks a handoff the turn decided, in the same
        transaction. Returns the updated conversation (None without ``expected_version``) and
        the stored messages.
        """
        if handoff_due is not None and (expected_version is None or bot_cursor is None):
            raise ValueError("handoff_due needs expected_version and bot_cursor")
        async with self._tx(write=True) as conn:
            updated: Conversation | None = None
            if expected_version is not None:
                params = {"b_id": conversation_id, "b_version": expected_version, "b_now": _now()}
                if bot_cursor is not None:
                    params["b_cursor"] = bot_cursor
                    params["b_due"] = handoff_due
                cas = _CAS_TOUCH if bot_cursor is None else _CAS_TURN
                row = (await conn.execute(cas, params)).first()
                if row is None:
                    raise StaleVersion(
                        f"conversation {conversation_id} moved past version {expected_version}"
                    )
                updated = _conversation(row)
            if nlu is not None:
                await conn.execute(
                    _SET_NLU,
                    {
                        "b_id": nlu.message_id,
                        "b_intent": nlu.intent,
                        "b_confidence": nlu.confidence,
                    },
                )
            stored = []
            for draft in drafts:
                message = await self._insert_message(
                    conn, conversation_id, draft, direction=Direction.OUTBOUND
                )
                if outbox_channel is not None:
                    await conn.execute(
                        _INSERT_OUTBOX,
                        {
                            "message_id": message.id,
                            "conversation_id": conversation_id,
                            "channel": outbox_channel,
                            "attempts": 0,
                            "next_attempt_at": message.created_at,
                        },
                    )
                stored.append(message)
            return updated, stored

    async def pending_conversations(self, limit: int = 1000) -> list[str]:
        """Conversations with the bot that have customer messages not handled yet (oldest
        first): what a restarted gateway, or one whose Rasa was down, must still answer."""
        query = (
            sa.select(conversations.c.id)
            .where(
                conversations.c.state == ConversationState.BOT.value,
                sa.exists().where(
                    messages.c.conversation_id == conversations.c.id,
                    messages.c.direction == Direction.INBOUND.value,
                    messages.c.seq > conversations.c.bot_cursor,
                ),
            )
            .order_by(conversations.c.updated_at)
            .limit(limit)
        )
        return await self._sweep(lambda conn: [row[0] for row in conn.execute(query)])

    async def conversations_with_handoff_due(self, limit: int = 1000) -> list[Conversation]:
        """Conversations still with the bot whose last turn decided a handoff that did not
        start (the gateway stopped in between), oldest change first."""
        query = (
            sa.select(conversations)
            .where(
                conversations.c.state == ConversationState.BOT.value,
                conversations.c.handoff_due.is_not(None),
            )
            .order_by(conversations.c.updated_at)
            .limit(limit)
        )
        return await self._sweep(lambda conn: [_conversation(row) for row in conn.execute(query)])

    async def pending_turn(
        self, conversation_id: str, *, recent_turns: int = 0
    ) -> PendingTurn | None:
        """What the bot must answer next, in one read: the conversation, its customer's name,
        the customer messages after the bot's cursor (oldest first) and, with
        ``recent_turns``, what :meth:`recent_customer_turns` gives up to the first of them.
        None if there is no such conversation."""
        async with self._tx() as conn:
            row = (await conn.execute(_PENDING_CONVERSATION, {"b_id": conversation_id})).first()
            if row is None:
                return None
            conversation = _conversation(row)
            pending = [
                _message(m)
                for m in await conn.execute(
                    _PENDING_MESSAGES, {"b_id": conversation_id, "b_after": conversation.bot_cursor}
                )
            ]
            recent: list[StoredMessage] = []
            if pending and recent_turns > 0:
                recent = await self._recent_customer_turns(
                    conn, conversation_id, upto_seq=pending[0].seq, limit=recent_turns
                )
            return PendingTurn(conversation, row.customer_name, pending, recent)

    async def recent_customer_turns(
        self, conversation_id: str, *, upto_seq: int, limit: int
    ) -> list[StoredMessage]:
        """The newest ``limit`` customer messages with seq <= ``upto_seq`` said since the last
        rating prompt (a system message with payload ``csat_request``), oldest first: the
        turns since the bot last took the conversation over from a person."""
        async with self._tx() as conn:
            return await self._recent_customer_turns(
                conn, conversation_id, upto_seq=upto_seq, limit=limit
            )

    async def _recent_customer_turns(
        self, conn: _Conn, conversation_id: str, *, upto_seq: int, limit: int
    ) -> list[StoredMessage]:
        params = {"b_id": conversation_id, "b_upto": upto_seq, "b_limit": limit}
        rows = (await conn.execute(_RECENT_CUSTOMER_TURNS, params)).all()
        return [_message(row) for row in reversed(rows)]

    async def find_inbound(
        self, conversation_id: str, channel_message_id: str
    ) -> StoredMessage | None:
        """The inbound message of this conversation with this channel message id, or None."""
        async with self._tx() as conn:
            return await self._find_inbound(conn, conversation_id, channel_message_id)

    async def messages(
        self, conversation_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredMessage]:
        """The conversation's messages with seq > ``after_seq``, ascending, at most ``limit``."""
        query = (
            sa.select(messages)
            .where(messages.c.conversation_id == conversation_id, messages.c.seq > after_seq)
            .order_by(messages.c.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        async with self._tx() as conn:
            return [_message(row) for row in await conn.execute(query)]

    async def last_message(
        self, conversation_id: str, sender_kind: SenderKind
    ) -> StoredMessage | None:
        """The conversation's newest message from this kind of sender, or None."""
        query = (
            sa.select(messages)
            .where(
                messages.c.conversation_id == conversation_id,
                messages.c.sender_kind == SenderKind(sender_kind).value,
            )
            .order_by(messages.c.seq.desc())
            .limit(1)
        )
        async with self._tx() as conn:
            row = (await conn.execute(query)).first()
            return None if row is None else _message(row)

    async def message(self, message_id: int) -> StoredMessage | None:
        """The message with this id (of any conversation), or None."""
        async with self._tx() as conn:
            row = (
                await conn.execute(sa.select(messages).where(messages.c.id == message_id))
            ).first()
            return None if row is None else _message(row)

    async def set_message_nlu(
        self, message_id: int, intent: str | None, confidence: float | None
    ) -> None:
        """Record what NLU made of a stored message. NotFound if there is no such message."""
        async with self._tx(write=True) as conn:
            result = await conn.execute(
                _SET_NLU, {"b_id": message_id, "b_intent": intent, "b_confidence": confidence}
            )
            if not result.rowcount:
                raise NotFound(f"no message {message_id}")

    async def _find_inbound(
        self, conn: _Conn, conversation_id: str, channel_message_id: str
    ) -> StoredMessage | None:
        row = (
            await conn.execute(
                _FIND_INBOUND, {"b_id": conversation_id, "b_channel_message_id": channel_message_id}
            )
        ).first()
        return None if row is None else _message(row)

    # -- handoffs -------------------------------------------------------------------------

    async def create_handoff(
        self, conversation_id: str, packet: dict[str, Any], reason: str, team: str, priority: str
    ) -> Handoff:
        """Record a request for a human, requested now. NotFound if no such conversation."""
        requested_at = _now()
        async with self._tx(write=True) as conn:
            await self._require_conversation(conn, conversation_id)
            handoff_id = (
                await conn.execute(
                    handoffs.insert()
                    .values(
                        conversation_id=conversation_id,
                        packet=packet,
                        reason=reason,
                        team=team,
                        priority=priority,
                        requested_at=requested_at,
                    )
                    .returning(handoffs.c.id)
                )
            ).scalar_one()
        return Handoff(
            id=handoff_id,
            conversation_id=conversation_id,
            packet=dict(packet),
            reason=reason,
            team=team,
            priority=priority,
            requested_at=requested_at,
            assigned_at=None,
            first_agent_reply_at=None,
            resolved_at=None,
            agent_id=None,
        )

    async def current_handoff(self, conversation_id: str) -> Handoff | None:
        """The conversation's newest unresolved handoff, or None."""
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    sa.select(handoffs)
                    .where(
                        handoffs.c.conversation_id == conversation_id,
                        handoffs.c.resolved_at.is_(None),
                    )
                    .order_by(handoffs.c.id.desc())
                    .limit(1)
                )
            ).first()
            return None if row is None else _handoff(row)

    async def queue_rows(self, states: Iterable[ConversationState]) -> list[QueueRow]:
        """What the console's queue view shows of every conversation in ``states``, in one
        query: the conversation, its customer's name, its open handoff's request time and
        reason, the assigned agent's name and the customer's last message. Oldest first."""
        wanted = [ConversationState(s).value for s in states]
        if not wanted:
            return []
        open_handoff = (
            sa.select(sa.func.max(handoffs.c.id))
            .where(
                handoffs.c.conversation_id == conversations.c.id,
                handoffs.c.resolved_at.is_(None),
            )
            .correlate(conversations)
            .scalar_subquery()
        )
        last_text = (
            sa.select(messages.c.text)
            .where(
                messages.c.conversation_id == conversations.c.id,
                messages.c.sender_kind == SenderKind.CUSTOMER.value,
            )
            .order_by(messages.c.seq.desc())
            .limit(1)
            .correlate(conversations)
            .scalar_subquery()
        )
        query = (
            sa.select(
                conversations,
                customers.c.display_name.label("customer_name"),
                handoffs.c.requested_at.label("handoff_requested_at"),
                handoffs.c.packet["reason_text"].as_string().label("reason_text"),
                agents.c.display_name.label("agent_name"),
                last_text.label("last_customer_text"),
            )
            .outerjoin(customers, customers.c.id == conversations.c.customer_id)
            .outerjoin(handoffs, handoffs.c.id == open_handoff)
            .outerjoin(agents, agents.c.id == conversations.c.assigned_agent_id)
            .where(conversations.c.state.in_(wanted))
            .order_by(conversations.c.created_at, conversations.c.id)
        )
        async with self._tx() as conn:
            return [
                QueueRow(
                    conversation=_conversation(row),
                    customer_name=row.customer_name,
                    handoff_requested_at=row.handoff_requested_at,
                    reason_text=row.reason_text,
                    agent_name=row.agent_name,
                    last_customer_text=row.last_customer_text,
                )
                for row in await conn.execute(query)
            ]

    async def handoffs_for_conversation(self, conversation_id: str) -> list[Handoff]:
        """All handoffs of a conversation, oldest first."""
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(handoffs)
                .where(handoffs.c.conversation_id == conversation_id)
                .order_by(handoffs.c.id)
            )
            return [_handoff(row) for row in rows]

    async def update_handoff(self, handoff_id: int, **changes: Any) -> Handoff:
        """Set some of assigned_at, first_agent_reply_at, resolved_at, agent_id, packet, team,
        priority (anything else: ValueError). NotFound for an unknown handoff or agent.
        """
        unknown = set(changes) - _HANDOFF_CHANGES
        if unknown:
            raise ValueError(f"cannot update handoff fields {sorted(unknown)}")
        for key in ("assigned_at", "first_agent_reply_at", "resolved_at"):
            if changes.get(key) is not None:
                changes[key] = _aware(changes[key], key)
        if not changes:
            async with self._tx() as conn:
                row = (
                    await conn.execute(sa.select(handoffs).where(handoffs.c.id == handoff_id))
                ).first()
        else:
            try:
                async with self._tx(write=True) as conn:
                    row = (
                        await conn.execute(
                            handoffs.update()
                            .where(handoffs.c.id == handoff_id)
                            .values(**changes)
                            .returning(*handoffs.c)
                        )
                    ).first()
            except IntegrityError as exc:
                raise NotFound(f"no agent {changes.get('agent_id')}") from exc
        if row is None:
            raise NotFound(f"no handoff {handoff_id}")
        return _handoff(row)

    async def recent_handoffs(self, limit: int = 50) -> list[Handoff]:
        """The newest handoffs across all conversations, newest first."""
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(handoffs).order_by(handoffs.c.id.desc()).limit(limit)
            )
            return [_handoff(row) for row in rows]

    # -- agents ---------------------------------------------------------------------------

    async def add_agent(
        self,
        username: str,
        display_name: str,
        password_hash: str,
        role: str = "agent",
        teams: Sequence[str] = (),
    ) -> Agent:
        """Create a console user. DuplicateAgent if the username is taken."""
        created_at = _now()
        team_list = list(teams)
        try:
            async with self._tx(write=True) as conn:
                agent_id = (
                    await conn.execute(
                        agents.insert()
                        .values(
                            username=username,
                            display_name=display_name,
                            password_hash=password_hash,
                            role=role,
                            teams=team_list,
                            created_at=created_at,
                        )
                        .returning(agents.c.id)
                    )
                ).scalar_one()
        except IntegrityError as exc:
            raise DuplicateAgent(f"agent {username!r} already exists") from exc
        return Agent(agent_id, username, display_name, password_hash, role, team_list, created_at)

    async def agent(self, agent_id: int) -> Agent | None:
        """The agent with this id, or None."""
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(agents).where(agents.c.id == agent_id))).first()
            return None if row is None else _agent(row)

    async def agent_by_username(self, username: str) -> Agent | None:
        """The agent with this username, or None."""
        async with self._tx() as conn:
            row = (
                await conn.execute(sa.select(agents).where(agents.c.username == username))
            ).first()
            return None if row is None else _agent(row)

    async def agents(self) -> list[Agent]:
        """All agents, in order of creation."""
        async with self._tx() as conn:
            return [
                _agent(row) for row in await conn.execute(sa.select(agents).order_by(agents.c.id))
            ]

    async def set_agent_password(self, agent_id: int, password_hash: str) -> None:
        """Replace an agent's password hash. NotFound if there is no such agent."""
        async with self._tx(write=True) as conn:
            result = await conn.execute(
                agents.update().where(agents.c.id == agent_id).values(password_hash=password_hash)
            )
            if not result.rowcount:
                raise NotFound(f"no agent {agent_id}")

    # -- notes, CSAT, audit ---------------------------------------------------------------

    async def add_note(self, conversation_id: str, agent_id: int, text: str) -> Note:
        """Leave an internal note. NotFound for an unknown conversation or agent."""
        created_at = _now()
        async with self._tx(write=True) as conn:
            await self._require_conversation(conn, conversation_id)
            agent_name = (
                await conn.execute(sa.select(agents.c.display_name).where(agents.c.id == agent_id))
            ).scalar_one_or_none()
            if agent_name is None:
                raise NotFound(f"no agent {agent_id}")
            note_id = (
                await conn.execute(
                    notes.insert()
                    .values(
                        conversation_id=conversation_id,
                        agent_id=agent_id,
                        text=text,
                        created_at=created_at,
                    )
                    .returning(notes.c.id)
                )
            ).scalar_one()
        return Note(note_id, conversation_id, agent_id, agent_name, text, created_at)

    async def notes(self, conversation_id: str) -> list[Note]:
        """A conversation's notes, oldest first, with each agent's current display name."""
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(notes, agents.c.display_name.label("agent_name"))
                .join(agents, agents.c.id == notes.c.agent_id)
                .where(notes.c.conversation_id == conversation_id)
                .order_by(notes.c.id)
            )
            return [
                Note(r.id, r.conversation_id, r.agent_id, r.agent_name, r.text, r.created_at)
                for r in rows
            ]

    async def add_csat(
        self, conversation_id: str, handoff_id: int | None, rating: int
    ) -> CsatRating:
        """Record a rating of 1..5 (anything else: ValueError). NotFound for unknown ids."""
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise ValueError(f"CSAT rating must be an integer from 1 to 5, not {rating!r}")
        created_at = _now()
        try:
            async with self._tx(write=True) as conn:
                await self._require_conversation(conn, conversation_id)
                rating_id = (
                    await conn.execute(
                        csat.insert()
                        .values(
                            conversation_id=conversation_id,
                            handoff_id=handoff_id,
                            rating=rating,
                            created_at=created_at,
                        )
                        .returning(csat.c.id)
                    )
                ).scalar_one()
        except IntegrityError as exc:
            raise NotFound(f"no handoff {handoff_id}") from exc
        return CsatRating(rating_id, conversation_id, handoff_id, rating, created_at)

    async def csat_for(self, conversation_id: str) -> list[CsatRating]:
        """A conversation's ratings, oldest first."""
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(csat).where(csat.c.conversation_id == conversation_id).order_by(csat.c.id)
            )
            return [_csat(row) for row in rows]

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
                    created_at=_now(),
                    actor=actor,
                    action=action,
                    conversation_id=conversation_id,
                    details=details,
                )
            )

    async def audit_log(self, conversation_id: str) -> list[dict[str, Any]]:
        """A conversation's audit trail, oldest first.

        Each entry: id, created_at (aware datetime), actor, action, conversation_id, details
        (a dict, empty when none were given).
        """
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(audit)
                .where(audit.c.conversation_id == conversation_id)
                .order_by(audit.c.id)
            )
            return [
                {
                    "id": row.id,
                    "created_at": row.created_at,
                    "actor": row.actor,
                    "action": row.action,
                    "conversation_id": row.conversation_id,
                    "details": dict(row.details or {}),
                }
                for row in rows
            ]

    # -- outbox ---------------------------------------------------------------------------

    async def outbox_add(self, message_id: int, conversation_id: str, channel: str) -> int:
        """Queue a stored message for delivery on ``channel``, due now; returns the item id.

        Idempotent: a message that is queued already keeps its one item, whose id is returned.
        NotFound if the message or the conversation does not exist.
        """
        try:
            async with self._tx(write=True) as conn:
                item_id: int = (
                    await conn.execute(
                        outbox.insert()
                        .values(
                            message_id=message_id,
                            conversation_id=conversation_id,
                            channel=channel,
                            attempts=0,
                            next_attempt_at=_now(),
                        )
                        .returning(outbox.c.id)
                    )
                ).scalar_one()
                return item_id
        except IntegrityError as exc:
            async with self._tx() as conn:
                existing = (
                    await conn.execute(
                        sa.select(outbox.c.id).where(outbox.c.message_id == message_id)
                    )
                ).scalar_one_or_none()
            if existing is None:
                raise NotFound(
                    f"no message {message_id} or no conversation {conversation_id}"
                ) from exc
            return int(existing)

    async def outbox_claim(
        self, now: datetime, lease_seconds: float, limit: int = 100
    ) -> list[OutboxItem]:
        """Lease up to ``limit`` due items until ``now + lease_seconds``, oldest id first.

        An item is due when it is neither delivered nor given up, its ``next_attempt_at`` is
        not after ``now`` and nobody holds an unexpired lease on it. Per conversation only the
        head of the line is handed out: an item is skipped while an older pending item of its
        conversation is leased by someone else or waiting for its next attempt, so whoever
        delivers the claimed items can keep each conversation's order.

        On PostgreSQL the due rows are locked ``FOR UPDATE SKIP LOCKED``, so two processes
        never lease the same item; a transaction-scoped advisory lock also makes concurrent
        claims take turns, so the head-of-line check always sees the other claimers' leases.
        On SQLite the write transaction (BEGIN IMMEDIATE) already lets one claimer in at a time.
        """
        now = _aware(now, "now")
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, not {lease_seconds!r}")
        if limit < 1:
            return []
        older = outbox.alias("older")
        held_up = (
            sa.exists()
            .where(
                older.c.conversation_id == outbox.c.conversation_id,
                older.c.id < outbox.c.id,
                older.c.delivered_at.is_(None),
                older.c.gave_up_at.is_(None),
                sa.or_(
                    older.c.next_attempt_at > now,
                    sa.and_(older.c.leased_until.is_not(None), older.c.leased_until > now),
                ),
            )
            .correlate(outbox)
        )
        due = (
            sa.select(outbox.c.id)
            .where(
                outbox.c.delivered_at.is_(None),
                outbox.c.gave_up_at.is_(None),
                outbox.c.next_attempt_at <= now,
                sa.or_(outbox.c.leased_until.is_(None), outbox.c.leased_until <= now),
                ~held_up,
            )
            .order_by(outbox.c.id)
            .limit(limit)
        )
        async with self._tx(write=True) as conn:
            if self._dialect == "postgresql":
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _OUTBOX_CLAIM_LOCK_KEY}
                )
                due = due.with_for_update(skip_locked=True)
            ids = list((await conn.execute(due)).scalars())
            if not ids:
                return []
            rows = await conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(ids))
                .values(leased_until=now + timedelta(seconds=lease_seconds))
                .returning(*outbox.c)
            )
            return sorted((_outbox_item(row) for row in rows), key=lambda item: item.id)

    async def outbox_delivered(self, item_id: int, at: datetime) -> None:
        """Mark an item delivered at ``at`` and drop its lease. NotFound for an unknown item."""
        await self._outbox_update(item_id, delivered_at=_aware(at, "at"), leased_until=None)

    async def outbox_retry(self, item_id: int, error: str, next_attempt_at: datetime) -> None:
        """Count a failed attempt, remember ``error`` and try again at ``next_attempt_at``.

        Drops the lease. NotFound for an unknown item.
        """
        await self._outbox_update(
            item_id,
            attempts=outbox.c.attempts + 1,
            last_error=error[:_MAX_ERROR_CHARS],
            next_attempt_at=_aware(next_attempt_at, "next_attempt_at"),
            leased_until=None,
        )

    async def outbox_give_up(self, item_id: int, error: str, at: datetime) -> None:
        """Count a last failed attempt and stop trying (``gave_up_at``); drops the lease.

        NotFound for an unknown item.
        """
        await self._outbox_update(
            item_id,
            attempts=outbox.c.attempts + 1,
            last_error=error[:_MAX_ERROR_CHARS],
            gave_up_at=_aware(at, "at"),
            leased_until=None,
        )

    async def outbox_release(self, item_ids: Sequence[int]) -> None:
        """Drop the leases on pending items without counting an attempt (they were not tried).

        Unknown, delivered and given-up items are left alone.
        """
        if not item_ids:
            return
        async with self._tx(write=True) as conn:
            await conn.execute(
                outbox.update()
                .where(
                    outbox.c.id.in_(list(item_ids)),
                    outbox.c.delivered_at.is_(None),
                    outbox.c.gave_up_at.is_(None),
                )
                .values(leased_until=None)
            )

    async def outbox_items(self, conversation_id: str) -> list[OutboxItem]:
        """All outbox items of a conversation (pending or not), oldest first."""
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(outbox)
                .where(outbox.c.conversation_id == conversation_id)
                .order_by(outbox.c.id)
            )
            return [_outbox_item(row) for row in rows]

    async def _outbox_update(self, item_id: int, **values: Any) -> None:
        async with self._tx(write=True) as conn:
            result = await conn.execute(
                outbox.update().where(outbox.c.id == item_id).values(**values)
            )
            if not result.rowcount:
                raise NotFound(f"no outbox item {item_id}")
