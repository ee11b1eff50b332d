"""sla_clocks: each running service-level clock of a handoff, as deadlines.

One row per handoff and kind (first_response, next_response, resolution). ``warn_at`` and
``due_at`` are computed when the clock starts (in business hours when the policy says so), so
they survive restarts and every replica agrees on them. ``next_check_at`` is the one moment
the sweep must look at the row again (the warning, then the breach; NULL when stopped or
breached): the sweep reads only rows due now through a partial index, never the whole table,
and a compare-and-set on it lets exactly one replica act on each warning and breach.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sla_clocks",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column(
            "conversation_id",
            sa.String(32),
            sa.ForeignKey("conversations.id", name="fk_sla_clocks_conversation_id_conversations"),
            nullable=False,
        ),
        sa.Column(
            "handoff_id",
            sa.Integer,
            sa.ForeignKey("handoffs.id", name="fk_sla_clocks_handoff_id_handoffs"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("warn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sla_clocks"),
        sa.UniqueConstraint("handoff_id", "kind", name="uq_sla_clocks_handoff_id_kind"),
    )
    op.create_index("ix_sla_clocks_conversation_id", "sla_clocks", ["conversation_id"])
    op.create_index(
        "ix_sla_clocks_next_check_at",
        "sla_clocks",
        ["next_check_at"],
        sqlite_where=sa.text("next_check_at IS NOT NULL"),
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_sla_clocks_next_check_at", table_name="sla_clocks")
    op.drop_index("ix_sla_clocks_conversation_id", table_name="sla_clocks")
    op.drop_table("sla_clocks")
