"""The conversation record in SQL: customers, conversations, messages, handoffs and the rest.

Customers and their channel identities, conversations, messages, handoffs, agents, notes,
CSAT ratings and the audit trail live in one database reached through SQLAlchemy 2 Core:

* SQLite (``sqlite:///var/gateway.sqlite3``, the default) for a single gateway process. Its
  statements run right on the event loop's thread through the standard ``sqlite3`` driver: a
  transaction here is a few small indexed statements that take tens of microseconds, which
  is far cheaper than handing every DB-API call to a worker thread and back (what aiosqlite
  does; measured in docs/performance.md). Another process's write lock blocks the loop for at
  most SQLITE_LOOP_BLOCK_MS per attempt (see :meth:`StoreEngine._begin_inline`); WAL
  checkpoints and sweeps over many conversations run in a worker thread.
* PostgreSQL (``postgresql://user:pass@host/db``, driven by asyncpg through SQLAlchemy's asyncio
  API) when several processes share the record.

The schema is owned by the alembic migrations in ``bot/store/migrations``; :meth:`Store.migrate`
brings a database up to date. The tables in :mod:`bot.store.schema` mirror those migrations and
are only used to build queries (a test checks that both agree).

Concurrency rules the rest of the gateway relies on:

* conversations are updated by compare-and-set on ``version`` (:class:`StaleVersion` on a race);
* message sequence numbers are 1, 2, 3, ... per conversation with no gaps or duplicates, however
  many coroutines or processes append at once;
* an inbound message is stored at most once per ``channel_message_id`` and conversation;
* an outbox item is leased by one worker at a time, and only the oldest undelivered items of a
  conversation are handed out, so two gateway processes never deliver out of order or twice
  at once (see :meth:`Store.outbox_claim`).

How the package is put together (each module imports only those above it):

* :mod:`~bot.store.schema`: column types and tables (``metadata``);
* :mod:`~bot.store.statements`: the statements of the bot's hot path, built once at import;
* :mod:`~bot.store.rows`: row -> record functions;
* :mod:`~bot.store.engine`: :class:`~bot.store.engine.StoreEngine`, the base class that opens
  the database, runs every method in one transaction (``_tx``), runs sweeps, checkpoints
  SQLite's write-ahead log and migrates;
* one module per aggregate, each a mixin over ``StoreEngine`` with that aggregate's public
  methods: :mod:`~bot.store.customers` (customers and identities),
  :mod:`~bot.store.conversations`, :mod:`~bot.store.messages` (appending, the bot's turn),
  :mod:`~bot.store.handoffs` (with the queue view's rows), :mod:`~bot.store.agents` (agents,
  notes, CSAT, audit), :mod:`~bot.store.outbox`, :mod:`~bot.store.sla` (SLA clocks as
  deadlines), :mod:`~bot.store.reports` (the dashboard's figures), :mod:`~bot.store.search`
  (the inbox, with full-text search), :mod:`~bot.store.canned` (canned replies),
  :mod:`~bot.store.files` (uploads), :mod:`~bot.store.training` (the designers' export) and
  :mod:`~bot.store.quality` (quality alerts). A
  query one aggregate needs from another (``require_conversation``, ``customer_by_id``) is a
  plain function of a connection in the module that owns it, so the mixins never call each
  other's methods;
* :class:`Store`, here: all the mixins together, and the only class the rest of the gateway
  uses.
"""

from __future__ import annotations

from bot.store.agents import AgentsMixin
from bot.store.canned import CannedMixin, ShortcutTaken
from bot.store.conversations import ConversationsMixin
from bot.store.customers import CustomersMixin
from bot.store.engine import DEFAULT_URL, alembic_config
from bot.store.files import FilesMixin
from bot.store.handoffs import HandoffsMixin
from bot.store.messages import MessagesMixin
from bot.store.outbox import OutboxMixin
from bot.store.quality import QualityMixin
from bot.store.reports import ReportsMixin
from bot.store.schema import metadata
from bot.store.search import SearchMixin
from bot.store.sla import SlaMixin
from bot.store.training import TrainingMixin

__all__ = ["DEFAULT_URL", "ShortcutTaken", "Store", "alembic_config", "metadata"]


class Store(
    CustomersMixin,
    ConversationsMixin,
    MessagesMixin,
    HandoffsMixin,
    AgentsMixin,
    OutboxMixin,
    SlaMixin,
    ReportsMixin,
    SearchMixin,
    CannedMixin,
    FilesMixin,
    TrainingMixin,
    QualityMixin,
):
    """The conversation record. Create with :meth:`connect`, then :meth:`migrate` once.

    Every method runs in its own short transaction, so a Store may be shared by any number of
    concurrent tasks (of one event loop).
    """
