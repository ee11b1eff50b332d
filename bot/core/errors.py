"""The gateway's one set of errors. Route handlers turn them into HTTP statuses.

``ServiceError`` and its subclasses are domain errors the service raises; ``StoreError`` and its
subclasses come from the store; ``NotFound`` is both, so one ``except NotFound`` covers a missing
record wherever it was noticed. ``DeliveryError`` is the whole outbound contract of a channel.
"""

from __future__ import annotations

from bot.core.types import StoredMessage

__all__ = [
    "BadMessage",
    "Conflict",
    "DeliveryError",
    "DuplicateAgent",
    "DuplicateMessage",
    "Forbidden",
    "NotFound",
    "ServiceError",
    "StaleVersion",
    "StoreError",
]


class ServiceError(Exception):
    """A domain error; route handlers turn it into an HTTP status."""


class Conflict(ServiceError):
    """The action does not fit the conversation's state (or someone else got there first)."""


class Forbidden(ServiceError):
    """The agent's role does not allow this (a team's canned replies, for a non-supervisor)."""


class BadMessage(ServiceError):
    """Empty, too long or otherwise unusable customer input."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DeliveryError(Exception):
    """The channel did not take the message. The outbox retries unless ``permanent``."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after, self.permanent = retry_after, permanent


class StoreError(Exception):
    """Base class of the store's own errors."""


class DuplicateMessage(StoreError):
    """The inbound message was stored before; ``existing`` is the stored copy."""

    def __init__(self, existing: StoredMessage) -> None:
        super().__init__(
            f"inbound message {existing.channel_message_id!r} is already stored "
            f"in conversation {existing.conversation_id} as seq {existing.seq}"
        )
        self.existing = existing


class StaleVersion(StoreError):
    """The conversation changed since it was read (its version moved on)."""


class NotFound(StoreError, ServiceError):
    """The conversation, customer, agent, handoff or message does not exist."""


class DuplicateAgent(StoreError):
    """An agent with that username already exists."""
