"""Connecting to each backend (every test runs on SQLite and on PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.store import Store
from bot.store.engine import SQLITE_LOOP_BLOCK_MS
from tests.bot.store.helpers import new_conversation, say


async def test_connect_sets_up_the_backend(backend: str, db_url: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        assert not (tmp_path / "data").exists()
        plain = db_url
        store = await Store.connect(plain)
        assert (tmp_path / "data").is_dir()
        try:
            async with store._tx() as conn:
                pragmas = {
                    name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                    for name in ("journal_mode", "foreign_keys", "busy_timeout")
                }
            assert pragmas == {
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": SQLITE_LOOP_BLOCK_MS,
            }
        finally:
            await store.close()

        # In-memory databases work too, even with concurrent callers on the one connection.
        memory = await Store.connect("sqlite+aiosqlite://")  # older spelling, same driver
        try:
            await memory.migrate()
            conversation = await new_conversation(memory)
            await asyncio.gather(*(say(memory, conversation.id, str(i)) for i in range(20)))
            seqs = [m.seq for m in await memory.messages(conversation.id)]
            assert seqs == list(range(1, 21))
        finally:
            await memory.close()
    else:
        plain = db_url.replace("postgresql+asyncpg://", "postgresql://")
        store = await Store.connect(plain)
        try:
            async with store._tx() as conn:
                assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
            assert store._engine.dialect.driver == "asyncpg"
        finally:
            await store.close()

    with pytest.raises(ValueError, match="unsupported database"):
        await Store.connect("mysql+aiomysql://u@localhost/db")
