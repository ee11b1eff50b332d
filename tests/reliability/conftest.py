"""Fixtures of the reliability tests: fresh PostgreSQL databases, private Redis servers, gateway
subprocesses, a stub Rasa.

PostgreSQL comes from ``TEST_DATABASE_URL`` (default postgres@127.0.0.1:5432/test, trust auth);
each test gets its own database ``csbot_rel_<random>``, dropped at its end. Redis is always a
private ``redis-server`` on a free port: the gateway's broker key prefix is fixed, so a shared
Redis would mix these tests with anything else using it. A missing service fails the tests.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from tests.reliability.support import Database, Gateways, RedisServer, StubRasa

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _admin_url() -> sa.URL:
    url = sa.make_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+asyncpg")
    return url


@pytest.fixture(scope="session")
async def pg_admin() -> AsyncIterator[AsyncEngine]:
    """An AUTOCOMMIT connection pool to the server (CREATE/DROP DATABASE need it)."""
    url = _admin_url()
    engine = create_async_engine(
        url, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"timeout": 10}
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        await engine.dispose()
        pytest.fail(
            f"PostgreSQL is required for the reliability tests but "
            f"{url.render_as_string(hide_password=True)} is not usable: "
            f"{type(exc).__name__}: {exc}. Start it or set TEST_DATABASE_URL.",
            pytrace=False,
        )
    yield engine
    await engine.dispose()


@pytest.fixture
async def database(pg_admin: AsyncEngine) -> AsyncIterator[Database]:
    """A new, empty database for this test, dropped (connections and all) at its end."""
    name = f"csbot_rel_{secrets.token_hex(6)}"
    async with pg_admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield Database(_admin_url().set(database=name).render_as_string(hide_password=False))
    finally:
        async with pg_admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[Gateways]:
    """Gateway subprocesses of this test; all stopped at its end (logs stay in tmp_path)."""
    started = Gateways(tmp_path)
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server of this test only, on a free port, without persistence."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)", pytrace=False)
    server = RedisServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


@pytest.fixture
async def stub_rasa() -> AsyncIterator[StubRasa]:
    """A Rasa stand-in that answers ``echo: <text>``."""
    stub = await StubRasa().start()
    try:
        yield stub
    finally:
        await stub.close()
