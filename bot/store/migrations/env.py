"""Alembic environment for the conversation record.

Configured in code (see ``bot.store.engine.alembic_config``), without an alembic.ini:

* ``Store.migrate()`` puts its open connection into ``config.attributes["connection"]`` and the
  migrations run inside the store's transaction;
* with ``sqlalchemy.url`` set instead, this script opens its own engine (asyncio for PostgreSQL);
* in offline mode (``--sql``) it prints the SQL for that URL.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.store.schema import metadata

config = context.config


def run_migrations(connection: Connection) -> None:
    """Run the pending migrations on an open (sync-facing) connection."""
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_with_url(url: str) -> None:
    """Open an engine for ``url`` just for the migrations."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


def main() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
    elif url and make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.begin() as sync_connection:
                run_migrations(sync_connection)
        finally:
            engine.dispose()
    elif url:
        asyncio.run(run_migrations_with_url(url))
    else:
        raise RuntimeError("no connection or sqlalchemy.url given to the migrations")


main()
