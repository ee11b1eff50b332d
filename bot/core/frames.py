"""Broker topics and the frames that travel on them: the one definition of the wire protocol.

Customer sockets (the web chat widget) subscribe to :func:`conversation_topic`; agent consoles
to :data:`CONSOLE_TOPIC`. The same builders serve live fan-out and a widget's resync, so the
protocol in docs/widget.md is written down once, here.
"""

from __future__ import annotations

from typing import Any

from bot.core.models import Conversation, Note
from bot.core.state import ConversationState
from bot.core.types import StoredMessage

Frame = dict[str, Any]

CONSOLE_TOPIC = "console"
# The broker queue of conversations waiting for a person (an index; SQL holds the truth).
QUEUE = "queue"


def conversation_topic(conversation_id: str) -> str:
    """Broker topic of everything a customer's open sockets should see."""
    return f"conv:{conversation_id}"


def conversation_lock(conversation_id: str) -> str:
    """Broker lock key that keeps one conversation's processing to one task at a time."""
    return f"lock:conv:{conversation_id}"


# --- to the customer ---------------------------------------------------------------------


def message_frame(message: StoredMessage) -> Frame:
    return {"type": "message", **message.to_dict()}


def state_frame(state: ConversationState) -> Frame:
    return {"type": "state", "state": state.value}


def queue_position_frame(position: int, eta_seconds: float | None, text: str) -> Frame:
    """Where a waiting customer stands; ``eta_seconds`` None when it cannot be known, ``text``
    the same sentence as the chat line (handoff/queue.py ``queue_line``)."""
    return {
        "type": "queue",
        "position": position,
        "eta_seconds": None if eta_seconds is None else round(eta_seconds),
        "text": text,
    }


def agent_joined_frame(name: str) -> Frame:
    return {"type": "agent_joined", "name": name}


def typing_frame(sender: str) -> Frame:
    """Someone is writing to the customer: ``bot`` (Rasa is answering) or ``agent``."""
    return {"type": "typing", "sender": sender}


def ack_frame(client_id: str, seq: int) -> Frame:
    return {"type": "ack", "client_id": client_id, "seq": seq}


def error_frame(code: str, message: str, client_id: str | None = None) -> Frame:
    return {"type": "error", "code": code, "message": message, "client_id": client_id}


# --- to the consoles ---------------------------------------------------------------------


def console_message_frame(conversation_id: str, message: StoredMessage) -> Frame:
    return {"type": "message", "conversation_id": conversation_id, "message": message.to_dict()}


def console_conversation_frame(conversation: Conversation) -> Frame:
    return {
        "type": "conversation",
        "conversation_id": conversation.id,
        "state": conversation.state.value,
        "assigned_agent_id": conversation.assigned_agent_id,
    }


def console_typing_frame(conversation_id: str) -> Frame:
    """The customer is typing in the conversation (the widget says so every few seconds)."""
    return {"type": "typing", "conversation_id": conversation_id}


def console_queue_frame(items: list[dict[str, Any]]) -> Frame:
    return {"type": "queue", "items": items}


def note_dict(note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "agent_name": note.agent_name,
        "text": note.text,
        "created_at": note.created_at.isoformat(),
    }


def console_note_frame(conversation_id: str, note: Note) -> Frame:
    return {"type": "note", "conversation_id": conversation_id, "note": note_dict(note)}
