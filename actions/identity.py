"""Who the customer in a conversation is, as far as the bot may trust it.

A customer is *verified* in one of two ways:

* the gateway says so: it sends ``verified_customer_id`` in the metadata of every message of a
  conversation whose customer the shop vouched for (a signed user id from the website) or who
  passed the bot's second factor in an earlier turn, on any linked channel;
* this action server said so earlier in the same conversation: after a right second factor it
  sets the ``verified_customer`` slot to a value signed with its own key and bound to the
  conversation id and the time (``"2.<unix time>.<hmac>"``, valid for VALID_SECONDS), which
  covers the turns before the gateway has recorded it.

Nothing the customer types can produce either: the gateway is the only client of Rasa's
channels, and a slot value without the right signature is ignored. Every order and device lookup
goes through :func:`verified_customer`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from typing import Any

from rasa_sdk import Tracker

VERIFIED_SLOT = "verified_customer"
ATTEMPTS_SLOT = "verification_attempts"
ANSWER_SLOT = "verification_answer"
MAX_ATTEMPTS = 3
VALID_SECONDS = 24 * 3600  # as the gateway's SECOND_FACTOR_VALID
_ID_RE = re.compile(r"[0-9]{1,12}")
METADATA_KEY = "verified_customer_id"
# The custom payload that tells the gateway who the customer turned out to be.
IDENTITY_PAYLOAD = "identity"

_KEY_ENV = "ACTION_SERVER_TOKEN"
# Without a configured secret (tests, a designer's `rasa run actions`) the key lives as long as
# the process; a restart then forgets verifications made in the slot, never trusts a forged one.
_fallback_key = secrets.token_bytes(32)


def _key() -> bytes:
    secret = os.environ.get(_KEY_ENV, "")
    if not secret:
        return _fallback_key
    return hashlib.sha256(b"csbot verified customer\0" + secret.encode()).digest()


def _mac(conversation_id: str, customer_id: int, issued: int) -> str:
    message = f"{conversation_id}\0{customer_id}\0{issued}".encode()
    return hmac.new(_key(), message, hashlib.sha256).hexdigest()[:32]


def sign(conversation_id: str, customer_id: int, now: float | None = None) -> str:
    """The ``verified_customer`` slot value for this conversation and customer."""
    issued = int(now if now is not None else time.time())
    return f"{customer_id}.{issued}.{_mac(conversation_id, customer_id, issued)}"


def _from_slot(value: Any, conversation_id: str, now: float | None = None) -> int | None:
    if not isinstance(value, str) or value.count(".") != 2:
        return None
    number, issued, mac = value.split(".")
    if not _ID_RE.fullmatch(number) or not _ID_RE.fullmatch(issued):
        return None
    customer_id, at = int(number), int(issued)
    if not hmac.compare_digest(mac, _mac(conversation_id, customer_id, at)):
        return None
    age = (now if now is not None else time.time()) - at
    return customer_id if 0 <= age < VALID_SECONDS else None


def _from_metadata(tracker: Tracker) -> int | None:
    metadata = (tracker.latest_message or {}).get("metadata") or {}
    value = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    if isinstance(value, str) and _ID_RE.fullmatch(value):
        return int(value)
    return None


def verified_customer(tracker: Tracker) -> int | None:
    """The backend id of the verified customer of this conversation, or None."""
    from_gateway = _from_metadata(tracker)
    if from_gateway is not None:
        return from_gateway
    return _from_slot(tracker.get_slot(VERIFIED_SLOT), tracker.sender_id)


def attempts(tracker: Tracker) -> int:
    """Wrong second factors given in this conversation so far."""
    value = tracker.get_slot(ATTEMPTS_SLOT)
    return int(value) if isinstance(value, int | float) else 0


def locked_out(tracker: Tracker) -> bool:
    return attempts(tracker) >= MAX_ATTEMPTS
