"""Full-text search over messages and notes (bot/store/search.py).

SQLite: FTS5 tables over ``messages.text`` and ``notes.text`` (external content: the text is
stored once, in its own table) kept up to date by triggers, and filled once here. PostgreSQL:
GIN indexes on ``to_tsvector('simple', text)``. On both, an index of conversations by their
latest activity. The search tables are not in the schema's metadata (bot/store/schema.py
``SEARCH_TABLES``): SQLAlchemy has no FTS5 type.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("messages", "notes")


def upgrade() -> None:
    # The inbox lists conversations by their latest activity.
    op.create_index("ix_conversations_updated_at", "conversations", ["updated_at"])
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            fts = f"{table}_fts"
            op.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5("
                f"text, content='{table}', content_rowid='id', tokenize='unicode61')"
            )
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS {fts}_insert AFTER INSERT ON {table} BEGIN "
                f"INSERT INTO {fts}(rowid, text) VALUES (new.id, new.text); END"
            )
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS {fts}_delete AFTER DELETE ON {table} BEGIN "
                f"INSERT INTO {fts}({fts}, rowid, text) VALUES ('delete', old.id, old.text); END"
            )
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS {fts}_update AFTER UPDATE OF text ON {table} BEGIN "
                f"INSERT INTO {fts}({fts}, rowid, text) VALUES ('delete', old.id, old.text); "
                f"INSERT INTO {fts}(rowid, text) VALUES (new.id, new.text); END"
            )
            op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
    else:
        for table in TABLES:
            op.execute(
                f"CREATE INDEX IF NOT EXISTS ix_{table}_text_search ON {table} "
                f"USING gin (to_tsvector('simple', text))"
            )


def downgrade() -> None:
    op.drop_index("ix_conversations_updated_at", table_name="conversations")
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            fts = f"{table}_fts"
            for suffix in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {fts}_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {fts}")
    else:
        for table in TABLES:
            op.execute(f"DROP INDEX IF EXISTS ix_{table}_text_search")
