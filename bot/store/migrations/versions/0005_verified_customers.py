"""customers and conversations: verified_id/_by/_at, whom the customer proved to be.

Set when the shop vouches for a signed-in web visitor or the bot's second factor succeeds. One
gateway customer per verified id (unique), so every channel the person verifies on joins the
same customer and history. The conversation's own columns say whether *this* conversation is
verified: a web chat (a browser anyone may use next) counts only its own verification.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("verified_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("verified_by", sa.String(32), nullable=True))
        batch.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_customers_verified_id", ["verified_id"], unique=True)
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("verified_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("verified_by", sa.String(32), nullable=True))
        batch.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("verified_at")
        batch.drop_column("verified_by")
        batch.drop_column("verified_id")
    with op.batch_alter_table("customers") as batch:
        batch.drop_index("ix_customers_verified_id")
        batch.drop_column("verified_at")
        batch.drop_column("verified_by")
        batch.drop_column("verified_id")
