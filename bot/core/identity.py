"""Verified customers: the shop's signed user ids and the bot's identity payload.

A customer is *verified* when the gateway knows which of the shop's customers they are:

* the website vouches for a signed-in visitor: it passes the shop's user id and
  ``HMAC-SHA256(shop secret, user id)`` (hex) to the widget (:func:`shop_user_hash`);
* the bot checked a second factor (an order's or device's e-mail or postcode) and says so with
  the custom payload ``{"identity": {"customer_id", "name", "vip", "method"}}``.

Either way the gateway stores the shop's id on the customer and sends it to the bot as
``verified_customer_id`` in the metadata of every message, which is the only source the
actions trust for whose orders and devices they may show.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

IDENTITY_PAYLOAD = "identity"
VERIFIED_METADATA_KEY = "verified_customer_id"
MAX_ID_CHARS = 255
MAX_NAME_CHARS = 200
METHODS = frozenset({"shop", "second_factor"})


@dataclass(frozen=True)
class VerifiedIdentity:
    customer_id: str
    method: str
    name: str | None = None
    vip: bool | None = None


def shop_user_hash(secret: str, user_id: str) -> str:
    """What the shop's server computes for a signed-in user (and the gateway checks)."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def shop_hash_matches(secret: str, user_id: str, user_hash: str) -> bool:
    return hmac.compare_digest(shop_user_hash(secret, user_id), user_hash.lower())


def valid_user_id(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_CHARS
        and value.isprintable()
        and value.strip() == value
    )


def parse_identity(payload: Any) -> VerifiedIdentity | None:
    """The bot's identity payload, or None when it is not well formed."""
    if not isinstance(payload, dict):
        return None
    customer_id = payload.get("customer_id")
    if isinstance(customer_id, int) and not isinstance(customer_id, bool):
        customer_id = str(customer_id)
    method = payload.get("method")
    name = payload.get("name")
    vip = payload.get("vip")
    if not valid_user_id(customer_id) or method not in METHODS:
        return None
    if name is not None and not (isinstance(name, str) and 0 < len(name) <= MAX_NAME_CHARS):
        return None
    if vip is not None and not isinstance(vip, bool):
        return None
    assert isinstance(customer_id, str) and isinstance(method, str)
    return VerifiedIdentity(customer_id, method, name, vip)
