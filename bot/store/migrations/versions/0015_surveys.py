"""Surveys after a resolve besides the rating (docs/metrics.md): CES (how easy, 1-7) and NPS
(would recommend, 0-10), switched on per team. conversations.awaiting_survey names the question
the customer is being asked (csat, ces or nps; NULL with awaiting_csat: the rating, as before);
survey_answers keeps the CES and NPS answers (ratings stay in csat).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("awaiting_survey", sa.String(8), nullable=True))
    op.create_table(
        "survey_answers",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column(
            "conversation_id",
            sa.String(32),
            sa.ForeignKey(
                "conversations.id", name="fk_survey_answers_conversation_id_conversations"
            ),
            nullable=False,
        ),
        sa.Column(
            "handoff_id",
            sa.Integer,
            sa.ForeignKey("handoffs.id", name="fk_survey_answers_handoff_id_handoffs"),
            nullable=True,
        ),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_survey_answers"),
    )
    op.create_index("ix_survey_answers_customer_id_kind", "survey_answers", ["customer_id", "kind"])
    op.create_index("ix_survey_answers_conversation_id", "survey_answers", ["conversation_id"])
    op.create_index("ix_survey_answers_handoff_id", "survey_answers", ["handoff_id"])


def downgrade() -> None:
    op.drop_table("survey_answers")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("awaiting_survey")
