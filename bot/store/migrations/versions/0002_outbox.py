"""The outbox: outbound messages waiting for (or done with) delivery to their channel.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from bot.store (see 0001).
TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UUID_HEX = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("message_id", BIG_ID, nullable=False),
        sa.Column("conversation_id", UUID_HEX, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
        sa.Column("leased_until", TIMESTAMP),
        sa.Column("delivered_at", TIMESTAMP),
        sa.Column("gave_up_at", TIMESTAMP),
        sa.Column("last_error", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_outbox_message_id_messages"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_outbox_conversation_id_conversations",
        ),
        sa.UniqueConstraint("message_id", name="uq_outbox_message_id"),
    )
    op.create_index("ix_outbox_conversation_id_id", "outbox", ["conversation_id", "id"])
    pending = sa.text("delivered_at IS NULL AND gave_up_at IS NULL")
    op.create_index(
        "ix_outbox_pending", "outbox", ["id"], sqlite_where=pending, postgresql_where=pending
    )


def downgrade() -> None:
    op.drop_table("outbox")
