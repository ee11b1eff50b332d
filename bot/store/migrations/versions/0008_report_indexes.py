"""Indexes for the dashboard's figures (bot/store/reports.py): conversations by when they were
opened (with ``last_seq``, so counting those with messages reads only the index) and handoffs by
when they were requested.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_conversations_created_at_last_seq", "conversations", ["created_at", "last_seq"]
    )
    op.create_index("ix_handoffs_requested_at", "handoffs", ["requested_at"])


def downgrade() -> None:
    op.drop_index("ix_handoffs_requested_at", table_name="handoffs")
    op.drop_index("ix_conversations_created_at_last_seq", table_name="conversations")
