"""SQLite runs on the event loop's thread: another process's lock must not stop the loop,
and the write-ahead log must still be checkpointed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bot.core.types import Direction, SenderKind
from bot.store import Store
from bot.store import engine as store_engine


async def _migrated(path: Path) -> Store:
    store = await Store.connect(f"sqlite:///{path}")
    await store.migrate()
    return store


def _hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    """Another process's writer, in a thread: holds SQLite's write lock for ``seconds``."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        connection.execute("COMMIT")
    finally:
        connection.close()


async def _largest_loop_gap(stop: asyncio.Event) -> float:
    """The longest time the event loop went without running this task (s)."""
    largest = 0.0
    last = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        largest = max(largest, now - last)
        last = now
    return largest


async def test_a_foreign_write_lock_delays_writes_without_stopping_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gw.sqlite3"
    store = await _migrated(path)
    try:
        customer = await store.find_or_create_customer("webchat", "lock")
        locked = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, 0.6, locked))
        holder.start()
        assert await asyncio.to_thread(locked.wait, 5)

        stop = asyncio.Event()
        gaps = asyncio.create_task(_largest_loop_gap(stop))
        started = time.monotonic()
        conversation = await store.create_conversation(customer.id, "webchat", "lock")
        waited = time.monotonic() - started
        # Reads go on while the other writer holds the lock (WAL).
        assert await store.conversation(conversation.id) == conversation
        stop.set()
        largest_gap = await gaps
        await asyncio.to_thread(holder.join)

        assert waited >= 0.4, f"the write did not wait for the lock ({waited:.3f} s)"
        # SQLite may block the loop for its short busy timeout, not for the whole 0.6 s.
        assert largest_gap < 0.25, f"event loop stalled for {largest_gap:.3f} s"
    finally:
        await store.close()


async def test_a_lock_held_past_the_timeout_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gw.sqlite3"
    store = await _migrated(path)
    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_MS", 300)
    try:
        customer = await store.find_or_create_customer("webchat", "stuck")
        locked = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, 1.2, locked))
        holder.start()
        assert await asyncio.to_thread(locked.wait, 5)
        with pytest.raises(Exception, match="database is locked"):
            await store.create_conversation(customer.id, "webchat", "stuck")
        await asyncio.to_thread(holder.join)
        # Nothing half-done was left behind, and the store works again.
        assert await store.conversations_for_customer(customer.id) == []
        created = await store.create_conversation(customer.id, "webchat", "stuck")
        assert await store.conversations_for_customer(customer.id) == [created]
    finally:
        await store.close()


async def test_the_write_ahead_log_is_checkpointed_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_engine, "SQLITE_CHECKPOINT_INTERVAL_S", 0.05)
    path = tmp_path / "gw.sqlite3"
    store = await _migrated(path)
    try:
        customer = await store.find_or_create_customer("webchat", "wal")
        conversation = await store.create_conversation(customer.id, "webchat", "wal")
        for i in range(200):
            await store.append_message(
                conversation.id,
                direction=Direction.INBOUND,
                sender_kind=SenderKind.CUSTOMER,
                text=f"message {i} " + "x" * 500,
            )
        # Without checkpoints (autocheckpoint is off) the database file would hold only the
        # schema; a reader that ignores the WAL must find the messages in the file itself.
        deadline = time.monotonic() + 5
        while True:
            copied = await asyncio.to_thread(_messages_in_main_file, path)
            if copied == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert copied == 200
    finally:
        await store.close()
    # After close the log has been copied over completely.
    assert _messages_in_main_file(path) == 200


def _messages_in_main_file(path: Path) -> int:
    """Count messages in a byte copy of the database file alone, without its WAL."""
    snapshot = path.with_name("snapshot.sqlite3")
    snapshot.write_bytes(path.read_bytes())
    connection = sqlite3.connect(snapshot)
    try:
        return int(connection.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.OperationalError as exc:  # not even the schema is in the file yet
        assert "no such table" in str(exc)
        return 0
    finally:
        connection.close()
        snapshot.unlink()
