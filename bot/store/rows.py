"""Row -> record: the functions that turn a result row into one of the core's records.

Each record is a dataclass whose fields are named like the columns (or labels) of the rows it
is read from, so one helper, :func:`row_mapper`, builds them all; only the columns that need
converting (enums, booleans SQLite returns as integers, JSON columns, buttons) are named, with
the function that converts the column's value.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from bot.core.models import (
    Agent,
    CannedReply,
    Conversation,
    CsatRating,
    Customer,
    Handoff,
    Identity,
    Note,
    OutboxItem,
    QualityAlert,
    SlaClock,
    StoredFile,
)
from bot.core.state import ConversationState
from bot.core.types import Attachment, Button, Direction, SenderKind, StoredMessage

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "RowMapper",
    "row_mapper",
    "to_agent",
    "to_canned_reply",
    "to_conversation",
    "to_csat",
    "to_customer",
    "to_handoff",
    "to_identity",
    "to_message",
    "to_note",
    "to_outbox_item",
    "to_sla_clock",
]

_R = TypeVar("_R", bound="DataclassInstance")

RowMapper = Callable[[sa.Row[Any]], _R]


def row_mapper(record: type[_R], **convert: Callable[[Any], Any]) -> RowMapper[_R]:
    """A function that builds ``record`` from a row: every field from the row's column (or
    label) of the same name, passed through ``convert[field]`` where one is given.

    The mapper reads all the columns in one ``attrgetter`` call and passes them positionally
    (this runs for every row the bot's hot path reads, and is as fast as a hand-written one).
    """
    build: Callable[..., _R] = record
    fields = dataclasses.fields(record)
    names = tuple(f.name for f in fields)
    if len(names) < 2 or any(f.kw_only for f in fields):
        raise TypeError(f"{record.__name__}: row_mapper needs two or more positional fields")
    if not set(convert) <= set(names):
        raise TypeError(f"{record.__name__} has no fields {sorted(set(convert) - set(names))}")
    fetch = operator.attrgetter(*names)
    converters = [(i, convert[name]) for i, name in enumerate(names) if name in convert]

    def to_record(row: sa.Row[Any]) -> _R:
        values = list(fetch(row))
        for i, fn in converters:
            values[i] = fn(values[i])
        return build(*values)

    return to_record


def _optional_bool(value: object) -> bool | None:
    return None if value is None else bool(value)


def _buttons(value: list[dict[str, str]] | None) -> list[Button]:
    return [Button(title=b["title"], payload=b["payload"]) for b in value or []]


to_customer = row_mapper(Customer, vip=bool)
to_identity = row_mapper(Identity)
to_conversation = row_mapper(Conversation, state=ConversationState, awaiting_csat=bool)
to_message = row_mapper(
    StoredMessage,
    direction=Direction,
    sender_kind=SenderKind,
    buttons=_buttons,
    attachment=Attachment.from_dict,
)
to_handoff = row_mapper(Handoff, packet=dict, bot_should_have_handled=_optional_bool)
to_agent = row_mapper(Agent, teams=list, skills=list, languages=list)
to_note = row_mapper(Note)
to_csat = row_mapper(CsatRating)
to_outbox_item = row_mapper(OutboxItem)
to_sla_clock = row_mapper(SlaClock)
to_canned_reply = row_mapper(CannedReply)
to_stored_file = row_mapper(StoredFile)
to_quality_alert = row_mapper(QualityAlert)
