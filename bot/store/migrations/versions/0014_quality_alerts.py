"""ix_messages_created_at: messages by time (the dashboard's NLU figures, the quality alerts
and the designers' export read a period of customer messages).

quality_alerts: a problem (the customers' topic intent) that many more customers wrote about
in an hour than its own baseline says (handoff/quality.py); one row per problem and hour, so
replicas that notice it at once store it once. A supervisor acknowledges it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_messages_created_at", "messages", ["created_at"])
    op.create_table(
        "quality_alerts",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("problem", sa.Text, nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contacts", sa.Integer, nullable=False),
        sa.Column("baseline", sa.Float, nullable=False),
        sa.Column("p_value", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "acknowledged_by",
            sa.Integer,
            sa.ForeignKey("agents.id", name="fk_quality_alerts_acknowledged_by_agents"),
            nullable=True,
        ),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_quality_alerts"),
        sa.UniqueConstraint("problem", "hour", name="uq_quality_alerts_problem_hour"),
    )


def downgrade() -> None:
    op.drop_table("quality_alerts")
    op.drop_index("ix_messages_created_at", table_name="messages")
