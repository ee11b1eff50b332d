"""canned_replies: the agents' saved answers, typed as /shortcut in the console's reply box.

``scope`` says who may use a reply: ``team:<name>`` (the team's members; supervisors manage
them) or ``agent:<id>`` (one agent's own). A shortcut is unique within its scope.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("shortcut", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column(
            "created_by",
            sa.Integer,
            sa.ForeignKey("agents.id", name="fk_canned_replies_created_by_agents"),
            nullable=True,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_canned_replies"),
        sa.UniqueConstraint("scope", "shortcut", name="uq_canned_replies_scope_shortcut"),
    )


def downgrade() -> None:
    op.drop_table("canned_replies")
