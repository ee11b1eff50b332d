"""agents: skills, languages, capacity and availability; conversations: what routing needs.

An agent's ``availability`` is what they set in the console (online / away / offline); the
gateway adds "away" by itself when their console has been gone a while (see handoff/routing.py).
``capacity`` is how many conversations the gateway may push to them at once, and
``last_assigned_at`` breaks ties (the agent idle longest gets the next one). A conversation
keeps the ``language`` and the ``required_skills`` its routing rule asked for.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("skills", _JSON, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("languages", _JSON, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("capacity", sa.Integer, nullable=False, server_default="3"))
        batch.add_column(
            sa.Column("availability", sa.String(16), nullable=False, server_default="online")
        )
        batch.add_column(sa.Column("last_assigned_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("language", sa.String(16), nullable=True))
        batch.add_column(sa.Column("required_skills", _JSON, nullable=True))
        # Push assignment counts each agent's open conversations.
        batch.create_index("ix_conversations_assigned_agent_id", ["assigned_agent_id"])


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_assigned_agent_id")
        batch.drop_column("required_skills")
        batch.drop_column("language")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("last_assigned_at")
        batch.drop_column("availability")
        batch.drop_column("capacity")
        batch.drop_column("languages")
        batch.drop_column("skills")
