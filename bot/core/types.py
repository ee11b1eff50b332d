"""Message types shared by the connectors, the conversation service and the console."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote


class SenderKind(StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class Direction(StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"


@dataclass(frozen=True)
class Button:
    title: str
    payload: str

    def to_dict(self) -> dict[str, str]:
        return {"title": self.title, "payload": self.payload}


@dataclass(frozen=True)
class Attachment:
    """A picture or a file that goes with a message.

    Either one the gateway stores (``file_id``: uploaded by a customer or an agent, served at
    :meth:`path`) or one that lives elsewhere (``url``: a bot's image response). ``kind`` is
    ``image`` (shown inline) or ``file`` (offered for download).
    """

    kind: str
    name: str
    content_type: str
    size: int | None = None
    file_id: str | None = None
    url: str | None = None

    @property
    def path(self) -> str | None:
        """Where the gateway serves a stored file (relative to its own address)."""
        if self.file_id is None:
            return None
        return f"/files/{self.file_id}/{quote(self.name, safe='')}"

    def to_dict(self) -> dict[str, Any]:
        """For the frames and the API: ``url`` is where to fetch it (a stored file's path)."""
        return {**self.stored(), "url": self.url if self.file_id is None else self.path}

    @classmethod
    def from_dict(cls, value: dict[str, Any] | None) -> Attachment | None:
        if not value:
            return None
        return cls(
            kind=str(value["kind"]),
            name=str(value["name"]),
            content_type=str(value["content_type"]),
            size=value.get("size"),
            file_id=value.get("file_id"),
            url=None if value.get("file_id") else value.get("url"),
        )

    def stored(self) -> dict[str, Any]:
        """The JSON the message row keeps (the URL of a stored file is derived, not kept)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "file_id": self.file_id,
            "url": self.url,
        }


@dataclass(frozen=True)
class InboundMessage:
    """A customer message as a connector hands it to the conversation service."""

    channel: str  # "webchat", "telegram", "slack", "rest"
    channel_user_id: str  # the channel's id for the customer (chat id, user id, visitor id)
    channel_message_id: str  # dedupe key within the channel (update_id, event_id, client id)
    text: str
    payload: str | None = None  # a pressed button's payload, e.g. "/affirm"
    display_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # True for a payload the connector made itself (Telegram's /start); a payload a customer
    # pressed or sent counts only if the bot offered it in its latest buttons.
    trusted_payload: bool = False
    # A picture or file the customer sent (stored before the message: bot/pipeline/files.py).
    attachment: Attachment | None = None


@dataclass(frozen=True)
class StoredMessage:
    """A message as stored: every message of a conversation has its own sequence number."""

    id: int
    conversation_id: str
    seq: int
    direction: Direction
    sender_kind: SenderKind
    text: str
    created_at: datetime
    sender_name: str | None = None
    buttons: list[Button] = field(default_factory=list)
    payload: str | None = None
    intent: str | None = None
    confidence: float | None = None
    channel_message_id: str | None = None
    attachment: Attachment | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "seq": self.seq,
            "direction": self.direction.value,
            "sender": self.sender_kind.value,
            "sender_name": self.sender_name,
            "text": self.text,
            "buttons": [b.to_dict() for b in self.buttons],
            "intent": self.intent,
            "confidence": self.confidence,
            "client_id": self.channel_message_id,
            "created_at": self.created_at.isoformat(),
            # Outbound only (a notice's kind, e.g. "queue_status"): what a customer pressed
            # stays out of the frames.
            "payload": self.payload if self.direction is Direction.OUTBOUND else None,
            "attachment": self.attachment.to_dict() if self.attachment else None,
        }


@dataclass(frozen=True)
class BotReply:
    text: str | None = None
    buttons: list[Button] = field(default_factory=list)
    custom: dict[str, Any] | None = None
    # Rasa's ``image`` (a URL) or ``attachment`` responses.
    attachment: Attachment | None = None


@dataclass(frozen=True)
class Understood:
    """What NLU made of the customer's message."""

    intent: str | None
    confidence: float | None


def is_text(value: str | None) -> bool:
    """Whether ``value`` is None or text that can be stored: no unpaired UTF-16 surrogates
    (JSON can carry them, UTF-8 cannot) and no NUL (PostgreSQL refuses it)."""
    if value is None:
        return True
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Payloads the gateway itself understands. HANDOFF: the "Talk to a person" button the gateway
# offers while the bot is down (it may be pressed before the bot is back). UNSUPPORTED and
# EDITED: what connectors give to what the bot cannot read (stickers, photos, edits), stored and
# shown to agents as they are and answered by the gateway with a notice while the bot has it.
HANDOFF_PAYLOAD = "gateway:handoff"
UNSUPPORTED_PAYLOAD = "gateway:unsupported"
EDITED_PAYLOAD = "gateway:edited"
# A picture or file without words: kept for the agents; while the bot has the conversation,
# the gateway says the bot cannot look at it and a person can.
ATTACHMENT_PAYLOAD = "gateway:attachment"
# A survey button after a resolve ("csat:4", "ces:6", "nps:10"): kept even when it is an older
# question's button (Telegram and Slack keep them pressable), so it is never read as the
# answer to the question asked now.
SURVEY_PAYLOAD = re.compile(r"^(csat|ces|nps):(\d{1,2})$")
