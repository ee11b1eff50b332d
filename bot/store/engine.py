"""The store's engine: connecting, transactions, SQLite on the event loop, migrations.

:class:`StoreEngine` is the base the aggregates' mixins (``customers``, ``conversations``, ...)
build on; it knows nothing of the tables. It opens the database (:meth:`StoreEngine.connect`),
runs each of the store's methods in one short transaction (:meth:`StoreEngine._tx`), runs sweeps
over many conversations off the event loop (:meth:`StoreEngine._sweep`), checkpoints SQLite's
write-ahead log in a worker thread and migrates the schema with alembic.

SQLite runs on the event loop's thread through the standard ``sqlite3`` driver (see
:mod:`bot.store`); PostgreSQL through asyncpg and SQLAlchemy's asyncio API. Both are reached
through the same small connection face, :class:`Conn`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from bot.core.errors import NotFound
from bot.core.tasks import cancel_and_wait

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "DEFAULT_URL",
    "MIGRATIONS_DIR",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_CHECKPOINT_INTERVAL_S",
    "SQLITE_LOOP_BLOCK_MS",
    "Conn",
    "StoreEngine",
    "alembic_config",
    "first",
    "insert_id",
    "insert_record",
]

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
    wait inside SQLite stops the event loop; :meth:`StoreEngine._begin_inline` does the longer wait
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
_D = TypeVar("_D", bound="DataclassInstance")


class Conn(Protocol):
    """What the store's queries use of a connection inside one transaction.

    SQLAlchemy's :class:`~sqlalchemy.ext.asyncio.AsyncConnection` (PostgreSQL) has this face;
    :class:`_InlineConn` gives it to a sync SQLite connection.
    """

    async def execute(
        self, statement: sa.Executable, parameters: Any = None
    ) -> sa.CursorResult[Any]: ...

    async def exec_driver_sql(self, statement: str) -> sa.CursorResult[Any]: ...

    async def run_sync(self, fn: Callable[[sa.Connection], _T]) -> _T: ...

    def begin_nested(self) -> contextlib.AbstractAsyncContextManager[Any]: ...


class _InlineConn:
    """A sync SQLite connection behind the async face the store's queries are written to (Conn).

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


async def first(
    conn: Conn, query: sa.Executable, to_record: Callable[[sa.Row[Any]], _T], params: Any = None
) -> _T | None:
    """The first row of ``query`` as a record, or None."""
    row = (await conn.execute(query, params)).first()
    return None if row is None else to_record(row)


async def insert_id(conn: Conn, table: sa.Table, **values: Any) -> int:
    """Insert one row into ``table`` and return its new ``id``."""
    new_id: int = (
        await conn.execute(table.insert().values(**values).returning(table.c.id))
    ).scalar_one()
    return new_id


async def insert_record(conn: Conn, table: sa.Table, record: _D) -> _D:
    """Insert ``record`` as a new row of ``table`` (those of its fields that are columns, but
    ``id``) and return it with the id the database gave it; ``record.id`` is a placeholder."""
    values = {
        f.name: getattr(record, f.name)
        for f in dataclasses.fields(record)
        if f.name != "id" and f.name in table.c
    }
    return dataclasses.replace(record, id=await insert_id(conn, table, **values))


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


class StoreEngine:
    """The base of :class:`bot.store.Store`: an engine and its transactions, no tables.

    Every method of the store runs in its own short transaction (:meth:`_tx`), so a store may be
    shared by any number of concurrent tasks (of one event loop).
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
    async def connect(cls, url: str = DEFAULT_URL) -> Self:
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
            await cancel_and_wait(self._checkpointer)
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
    async def _tx(self, *, write: bool = False) -> AsyncIterator[Conn]:
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
            # AsyncConnection has this face already.
            yield conn

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

    async def _one(
        self, query: sa.Executable, to_record: Callable[[sa.Row[Any]], _T], params: Any = None
    ) -> _T | None:
        """The first row of ``query`` as a record, or None (in one read transaction)."""
        async with self._tx() as conn:
            return await first(conn, query, to_record, params)

    async def _all(
        self, query: sa.Executable, to_record: Callable[[sa.Row[Any]], _T], params: Any = None
    ) -> list[_T]:
        """Every row of ``query`` as a record (in one read transaction)."""
        async with self._tx() as conn:
            return [to_record(row) for row in await conn.execute(query, params)]

    async def _update_one(self, statement: sa.Executable, params: Any, missing: str) -> None:
        """Run an UPDATE in one write transaction; NotFound(``missing``) if no row matched."""
        async with self._tx(write=True) as conn:
            if not (await conn.execute(statement, params)).rowcount:
                raise NotFound(missing)
