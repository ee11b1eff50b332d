"""conversation_reads: how far each agent has read each conversation (the console's unread
counts: customer messages past ``last_read_seq``).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversation_reads",
        sa.Column(
            "agent_id",
            sa.Integer,
            sa.ForeignKey("agents.id", name="fk_conversation_reads_agent_id_agents"),
            nullable=False,
        ),
        sa.Column(
            "conversation_id",
            sa.String(32),
            sa.ForeignKey(
                "conversations.id", name="fk_conversation_reads_conversation_id_conversations"
            ),
            nullable=False,
        ),
        sa.Column("last_read_seq", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "conversation_id", name="pk_conversation_reads"),
    )


def downgrade() -> None:
    op.drop_table("conversation_reads")
