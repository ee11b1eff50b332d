"""handoffs: the customer's last understood intent before the handoff, and the agent's wrap-up
at resolve (what the problem really was, and whether the bot should have handled it).

identities.linked_by: who linked the identity to its customer by hand ("agent:<id>"; NULL:
the channel itself, or the customer's own verification). A hand-linked Telegram chat or Slack
DM does not inherit the customer's verification (bot/core/identity.py) until it verifies.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("handoffs") as batch:
        batch.add_column(sa.Column("intent", sa.Text, nullable=True))
        batch.add_column(sa.Column("disposition", sa.Text, nullable=True))
        batch.add_column(sa.Column("bot_should_have_handled", sa.Boolean, nullable=True))
    with op.batch_alter_table("identities") as batch:
        batch.add_column(sa.Column("linked_by", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("identities") as batch:
        batch.drop_column("linked_by")
    with op.batch_alter_table("handoffs") as batch:
        batch.drop_column("bot_should_have_handled")
        batch.drop_column("disposition")
        batch.drop_column("intent")
