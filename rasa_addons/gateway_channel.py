"""Rasa's end of the link to the gateway. Runs INSIDE the Rasa server (.venv-rasa, Python
3.10), loaded by module path from credentials.yml (``rasa_addons.gateway_channel.GatewayInput``)
and endpoints.yml (its tracker stores); the gateway never imports it.

Rasa's REST channel answers a message with the bot's replies only. What NLU understood
(intent and confidence, for the transcript, the handoff packet and the gateway's handoff
policy) then takes a second request, ``GET /conversations/{id}/tracker``, and Rasa rebuilds
the whole tracker from its events to answer it: about 8 % more Rasa CPU per turn, measured
(docs/performance.md). This channel answers with both at once::

    POST /webhooks/gateway/webhook   {"sender": ..., "message": ..., "metadata": {...}}
    200 {"messages": [<items as the REST channel sends them>],
         "error": null | "<what went wrong in Rasa; messages holds what was said before>",
         "nlu": {"intent": "greet", "confidence": 0.98} | null,
         "paused": false | true | null}

The NLU comes from the tracker store (endpoints.yml), which notes each conversation's latest
parse when Rasa saves the tracker at the end of a turn. ``nlu`` is null when that note is not
this request's message (another tracker store is configured, or the note was evicted);
the gateway then reads the tracker as before. It sends one message per conversation at a time,
so the note it reads is its own.

No channel secrets live here: Telegram, Slack and the widget belong to the gateway. Only the
gateway may talk to Rasa: both channels answer 401 unless the request carries the Rasa token
(``?token=``, the same one Rasa's HTTP API takes; ``token: ${RASA_TOKEN}`` in credentials.yml),
so nobody on the network can write into a customer's tracker.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.tracker_store import InMemoryTrackerStore, RedisTrackerStore, SQLTrackerStore
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

# Conversations whose latest parse is kept (least recently saved dropped first).
MAX_NOTES = 100_000

_notes: OrderedDict[str, dict[str, Any]] = OrderedDict()


def newest_user_message(tracker: DialogueStateTracker) -> UserUttered | None:
    """The newest message the customer sent, even when a fallback has reverted it:
    ``tracker.latest_message`` then names the message before it, whose parse is not this one's.
    """
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            return event
    return None


def note_latest_parse(tracker: DialogueStateTracker) -> None:
    """Remember what NLU made of the conversation's newest message, and whether it's paused."""
    latest = newest_user_message(tracker)
    intent = (latest.intent or {}) if latest is not None else {}
    _notes[tracker.sender_id] = {
        "message_id": latest.message_id if latest is not None else None,
        "intent": intent.get("name"),
        "confidence": intent.get("confidence"),
        "paused": tracker.is_paused(),
    }
    _notes.move_to_end(tracker.sender_id)
    while len(_notes) > MAX_NOTES:
        _notes.popitem(last=False)


class _NotesLatestParse:
    """Mixin for a Rasa tracker store: note the latest parse whenever a tracker is saved."""

    async def save(self, tracker: DialogueStateTracker, *args: Any, **kwargs: Any) -> None:
        await super().save(tracker, *args, **kwargs)  # type: ignore[misc]
        note_latest_parse(tracker)


class GatewayInMemoryTrackerStore(_NotesLatestParse, InMemoryTrackerStore):
    """Rasa's in-memory tracker store (one Rasa process) that notes the latest parse."""


class GatewayRedisTrackerStore(_NotesLatestParse, RedisTrackerStore):
    """Rasa's Redis tracker store (scale mode: several Rasa replicas) that notes it too."""


class GatewaySQLTrackerStore(_NotesLatestParse, SQLTrackerStore):
    """Rasa's SQL tracker store that notes it too: ``make run`` keeps trackers in a SQLite
    file, so loading a newly trained model (which replaces Rasa's agent and with it an
    in-memory store) keeps every open conversation."""


class _TokenRequired:
    """Mixin for a Rasa input channel: every request must carry ``?token=`` (the Rasa token)."""

    def __init__(self, token: str | None = None) -> None:
        if not token:
            raise ValueError(
                f"credentials.yml: {type(self).__name__} needs 'token: ${{RASA_TOKEN}}' "
                "(only the gateway may talk to Rasa)"
            )
        self.token = token

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> Any:
        return cls((credentials or {}).get("token"))

    def guard(self, hook: Blueprint) -> Blueprint:
        """Put the token check in front of every route of the channel's blueprint."""

        @hook.middleware("request")
        async def check_token(request: Request) -> HTTPResponse | None:
            supplied = request.args.get("token") or ""
            if hmac.compare_digest(supplied.encode(), self.token.encode()):
                return None
            return response.json({"error": "a valid ?token= is required"}, status=401)

        return hook


class ProtectedRestInput(_TokenRequired, RestInput):
    """Rasa's REST channel (``/webhooks/rest/webhook``) behind the Rasa token."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return self.guard(super().blueprint(on_new_message))


class GatewayInput(_TokenRequired, RestInput):
    """The REST channel's request, answered with the replies plus the NLU of the message."""

    @classmethod
    def name(cls) -> str:
        return "gateway"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = self.guard(Blueprint("gateway_webhook", __name__))

        @hook.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            body = request.json if isinstance(request.json, dict) else {}
            sender, text = body.get("sender"), body.get("message")
            metadata = body.get("metadata")
            if not isinstance(sender, str) or not sender or not isinstance(text, str):
                return response.json(
                    {"error": "expected JSON with a non-empty 'sender' and a 'message' string"},
                    status=400,
                )
            if metadata is not None and not isinstance(metadata, dict):
                return response.json({"error": "'metadata' must be an object"}, status=400)
            collector = CollectingOutputChannel()
            message_id = uuid.uuid4().hex
            error = None
            try:
                await on_new_message(
                    UserMessage(
                        text,
                        collector,
                        sender,
                        input_channel=self.name(),
                        metadata=metadata,
                        message_id=message_id,
                    )
                )
            except Exception as exc:
                # Like the REST channel: answer with what was said so far instead of a 500,
                # which the gateway would retry for ever on an error that happens every time.
                logger.exception("gateway channel: handling a message failed")
                error = f"{type(exc).__name__}: {exc}"[:300]
            note = _notes.get(sender)
            ours = note is not None and note["message_id"] == message_id
            return response.json(
                {
                    "error": error,
                    "messages": collector.messages,
                    "nlu": {"intent": note["intent"], "confidence": note["confidence"]}
                    if ours and note is not None
                    else None,
                    "paused": note["paused"] if ours and note is not None else None,
                }
            )

        return hook
