"""conversations.handoff_due: a handoff decided in a bot turn, until the handoff has started.

Written in the same transaction as the bot turn that decided it and cleared by the state change
that starts the handoff, so a crash between the two can't leave a customer who was told a
person is coming with the bot (the gateway's sweep starts such handoffs).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from bot.store (see 0001).
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("handoff_due", JSON))
    due = sa.text("handoff_due IS NOT NULL")
    op.create_index(
        "ix_conversations_handoff_due",
        "conversations",
        ["updated_at"],
        sqlite_where=due,
        postgresql_where=due,
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_handoff_due", "conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("handoff_due")
