"""Initial schema: customers, identities, agents, conversations, messages, handoffs, notes,
CSAT ratings and the audit trail.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from bot.store, so this migration keeps meaning what
# it meant when the application's types change.
TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UUID_HEX = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", UUID_HEX, nullable=False),
        sa.Column("display_name", sa.Text()),
        sa.Column("email", sa.Text()),
        sa.Column("vip", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
    )
    op.create_table(
        "identities",
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("channel_user_id", sa.String(255), nullable=False),
        sa.Column("customer_id", UUID_HEX, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("channel", "channel_user_id", name="pk_identities"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_identities_customer_id_customers"
        ),
    )
    op.create_index("ix_identities_customer_id", "identities", ["customer_id"])

    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(32), nullable=False, server_default="agent"),
        sa.Column("teams", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agents"),
        sa.UniqueConstraint("username", name="uq_agents_username"),
    )

    op.create_table(
        "conversations",
        sa.Column("id", UUID_HEX, nullable=False),
        sa.Column("customer_id", UUID_HEX, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("channel_user_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("team", sa.Text()),
        sa.Column("priority", sa.String(32), nullable=False),
        sa.Column("assigned_agent_id", sa.Integer()),
        sa.Column("awaiting_csat", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("bot_cursor", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_seq", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_conversations_customer_id_customers"
        ),
        sa.ForeignKeyConstraint(
            ["assigned_agent_id"], ["agents.id"], name="fk_conversations_assigned_agent_id_agents"
        ),
    )
    op.create_index("ix_conversations_customer_id", "conversations", ["customer_id"])
    op.create_index(
        "ix_conversations_channel_channel_user_id_created_at",
        "conversations",
        ["channel", "channel_user_id", "created_at"],
    )
    op.create_index("ix_conversations_state_created_at", "conversations", ["state", "created_at"])

    op.create_table(
        "messages",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("conversation_id", UUID_HEX, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("sender_kind", sa.String(16), nullable=False),
        sa.Column("sender_name", sa.Text()),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("buttons", JSON, nullable=False),
        sa.Column("payload", sa.Text()),
        sa.Column("intent", sa.Text()),
        sa.Column("confidence", sa.Float()),
        sa.Column("channel_message_id", sa.String(255)),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_messages_conversation_id_conversations",
        ),
        sa.UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_id_seq"),
    )
    inbound = sa.text("direction = 'in' AND channel_message_id IS NOT NULL")
    op.create_index(
        "uq_messages_inbound_channel_message_id",
        "messages",
        ["conversation_id", "channel_message_id"],
        unique=True,
        sqlite_where=inbound,
        postgresql_where=inbound,
    )

    op.create_table(
        "handoffs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", UUID_HEX, nullable=False),
        sa.Column("packet", JSON, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("team", sa.Text(), nullable=False),
        sa.Column("priority", sa.String(32), nullable=False),
        sa.Column("requested_at", TIMESTAMP, nullable=False),
        sa.Column("assigned_at", TIMESTAMP),
        sa.Column("first_agent_reply_at", TIMESTAMP),
        sa.Column("resolved_at", TIMESTAMP),
        sa.Column("agent_id", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name="pk_handoffs"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_handoffs_conversation_id_conversations",
        ),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name="fk_handoffs_agent_id_agents"),
    )
    op.create_index("ix_handoffs_conversation_id", "handoffs", ["conversation_id"])

    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", UUID_HEX, nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notes"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_notes_conversation_id_conversations",
        ),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name="fk_notes_agent_id_agents"),
    )
    op.create_index("ix_notes_conversation_id", "notes", ["conversation_id"])

    op.create_table(
        "csat",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", UUID_HEX, nullable=False),
        sa.Column("handoff_id", sa.Integer()),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_csat"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_csat_conversation_id_conversations",
        ),
        sa.ForeignKeyConstraint(
            ["handoff_id"], ["handoffs.id"], name="fk_csat_handoff_id_handoffs"
        ),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="ck_csat_rating_range"),
    )
    op.create_index("ix_csat_conversation_id", "csat", ["conversation_id"])

    op.create_table(
        "audit",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("conversation_id", UUID_HEX),
        sa.Column("details", JSON),
        sa.PrimaryKeyConstraint("id", name="pk_audit"),
    )
    op.create_index("ix_audit_conversation_id", "audit", ["conversation_id"])


def downgrade() -> None:
    for table in (
        "audit",
        "csat",
        "notes",
        "handoffs",
        "messages",
        "conversations",
        "agents",
        "identities",
        "customers",
    ):
        op.drop_table(table)
