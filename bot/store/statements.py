"""Statements of the bot's hot path, built once at import.

Building a statement (coercing each operand, making bind parameters) costs SQLAlchemy more CPU
than SQLite needs to run it; these run on every customer message, so they are built at import
and executed with parameters. Bind names start with ``b_`` so that an UPDATE's parameters never
name a column (which would add it to the SET clause).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bot.core.types import Direction, SenderKind
from bot.store.schema import JSONType, conversations, customers, identities, messages, outbox


def _b(name: str, type_: Any = None) -> sa.BindParameter[Any]:
    return sa.bindparam(f"b_{name}", type_=type_)


SELECT_CONVERSATION = sa.select(conversations).where(conversations.c.id == _b("id"))
# Claims a conversation's next message seq (see messages.claim_seq): the seq alone, or with the
# whole conversation row as it is now.
_BUMP_SEQ = (
    conversations.update()
    .where(conversations.c.id == _b("id"))
    .values(last_seq=conversations.c.last_seq + 1)
)
BUMP_SEQ = _BUMP_SEQ.returning(conversations.c.last_seq)
BUMP_SEQ_RETURNING_ALL = _BUMP_SEQ.returning(*conversations.c)
FIND_INBOUND = sa.select(messages).where(
    messages.c.conversation_id == _b("id"),
    messages.c.channel_message_id == _b("channel_message_id"),
    messages.c.direction == Direction.INBOUND.value,
)
INSERT_MESSAGE = messages.insert().returning(messages.c.id)
INSERT_OUTBOX = outbox.insert()
PENDING_CONVERSATION = (
    sa.select(
        conversations,
        customers.c.display_name.label("customer_name"),
        customers.c.verified_id.label("customer_verified_id"),
        customers.c.verified_by.label("customer_verified_by"),
        identities.c.linked_by.label("identity_linked_by"),
    )
    .join(customers, customers.c.id == conversations.c.customer_id)
    .outerjoin(
        identities,
        (identities.c.channel == conversations.c.channel)
        & (identities.c.channel_user_id == conversations.c.channel_user_id),
    )
    .where(conversations.c.id == _b("id"))
)
PENDING_MESSAGES = (
    sa.select(messages)
    .where(
        messages.c.conversation_id == _b("id"),
        messages.c.seq > _b("after"),
        messages.c.direction == Direction.INBOUND.value,
    )
    .order_by(messages.c.seq)
)
# Compare-and-set of a bot turn: the version goes up by one only if it is still b_version.
_CAS = conversations.update().where(
    conversations.c.id == _b("id"), conversations.c.version == _b("version")
)
CAS_TURN = _CAS.values(
    version=conversations.c.version + 1,
    updated_at=_b("now"),
    bot_cursor=sa.case(
        (conversations.c.bot_cursor < _b("cursor"), _b("cursor", sa.Integer)),
        else_=conversations.c.bot_cursor,
    ),
    # A due handoff is only ever cleared by the change that starts it.
    handoff_due=sa.func.coalesce(_b("due", JSONType), conversations.c.handoff_due),
).returning(*conversations.c)
CAS_TOUCH = _CAS.values(version=conversations.c.version + 1, updated_at=_b("now")).returning(
    *conversations.c
)
SET_NLU = (
    messages.update()
    .where(messages.c.id == _b("id"))
    .values(intent=_b("intent"), confidence=_b("confidence"))
)
_LAST_RATING_PROMPT = (
    sa.select(sa.func.coalesce(sa.func.max(messages.c.seq), 0))
    .where(
        messages.c.conversation_id == _b("id"),
        messages.c.sender_kind == SenderKind.SYSTEM.value,
        messages.c.payload == "csat_request",
        messages.c.seq <= _b("upto"),
    )
    .scalar_subquery()
)
RECENT_CUSTOMER_TURNS = (
    sa.select(messages)
    .where(
        messages.c.conversation_id == _b("id"),
        messages.c.sender_kind == SenderKind.CUSTOMER.value,
        messages.c.seq <= _b("upto"),
        messages.c.seq > _LAST_RATING_PROMPT,
    )
    .order_by(messages.c.seq.desc())
    .limit(_b("limit", sa.Integer))
)
