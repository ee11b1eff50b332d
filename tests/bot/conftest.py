"""Fixtures for the gateway core: a Store on SQLite and on a real PostgreSQL.

PostgreSQL comes from ``TEST_DATABASE_URL`` (default: postgres@127.0.0.1:5432/test). The tests
create their own database ``csbot_test_<random>`` there and drop it when the session ends.
An unreachable PostgreSQL fails the tests: it is never a reason to skip them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.store import Store

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", "postgresql"]


@dataclass(frozen=True)
class PgDatabase:
    """The throwaway PostgreSQL database of this test session."""

    url: str


def _asyncpg_url(url: str) -> sa.URL:
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed


@pytest.fixture(scope="session")
async def pg_database() -> AsyncIterator[PgDatabase]:
    """Create ``csbot_test_<random>`` for this session (AUTOCOMMIT: CREATE DATABASE needs it)."""
    admin_url = _asyncpg_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))
    name = f"csbot_test_{secrets.token_hex(6)}"
    admin = create_async_engine(
        admin_url,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"timeout": 10},
    )
    error: Exception | None = None
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        error = exc
    if error is not None:
        await admin.dispose()
        pytest.fail(
            f"PostgreSQL is required for the store tests but "
            f"{admin_url.render_as_string(hide_password=True)} is not usable: "
            f"{type(error).__name__}: {error}\n"
            "Start PostgreSQL or point TEST_DATABASE_URL at one "
            "(a user allowed to CREATE DATABASE).",
            pytrace=False,
        )
    try:
        yield PgDatabase(admin_url.set(database=name).render_as_string(hide_password=False))
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test: every store test runs once on each."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the backend's test database lives (PostgreSQL is set up only when needed)."""
    if backend == "sqlite":
        # A directory that does not exist yet: connect() must create it.
        return f"sqlite:///{tmp_path}/data/store.sqlite3"
    database: PgDatabase = request.getfixturevalue("pg_database")
    return database.url


@pytest.fixture
async def db_url(backend: str, database_url: str) -> str:
    """The URL of an empty database (a new SQLite file, or PostgreSQL with a fresh schema)."""
    if backend == "postgresql":
        engine = create_async_engine(database_url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("DROP SCHEMA public CASCADE"))
                await conn.execute(sa.text("CREATE SCHEMA public"))
        finally:
            await engine.dispose()
    return database_url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A migrated, empty Store."""
    store = await Store.connect(db_url)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


async def schema_state(db_url: str) -> tuple[str | None, str | None, list[object]]:
    """(migration head, the database's revision, differences between bot.store.schema's tables
    and the migrated schema): what the store tests check after migrating."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from bot.store import alembic_config, metadata
    from bot.store.schema import outside_search

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()

    def inspect(connection: sa.Connection) -> tuple[str | None, list[object]]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": outside_search}
        )
        return context.get_current_revision(), list(compare_metadata(context, metadata))

    if db_url.startswith("sqlite"):
        sync_engine = sa.create_engine(db_url, poolclass=NullPool)
        try:
            with sync_engine.connect() as sync_conn:
                revision, diff = inspect(sync_conn)
        finally:
            sync_engine.dispose()
        return head, revision, diff
    engine = create_async_engine(db_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            revision, diff = await conn.run_sync(inspect)
    finally:
        await engine.dispose()
    return head, revision, diff
