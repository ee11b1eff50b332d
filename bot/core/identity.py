"""Verified customers: the shop's signed user ids and the bot's identity payload.

A customer is *verified* when the gateway knows which of the shop's customers they are:

* the website vouches for a signed-in visitor: it passes the shop's user id and
  ``HMAC-SHA256(shop secret, user id)`` (hex) to the widget (:func:`shop_user_hash`);
* the bot checked a second factor (an order's or device's e-mail or postcode) and says so with
  the custom payload ``{"identity": {"customer_id", "name", "vip", "method"}}``.

Either way the gateway stores the shop's id on the conversation and on the customer, and sends
it to the bot as ``verified_customer_id`` in the metadata of every message (:func:`verified_as`
says when), which is the only source the actions trust for whose orders and devices they may
show. A verification stays with a *personal* channel identity (a Telegram chat, a Slack DM):
later conversations there are verified too. A web chat is a browser that someone else may use
next, and a Slack thread is shared: there only the conversation's own verification counts, and
a second factor's lasts SECOND_FACTOR_VALID.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.core.models import Conversation

IDENTITY_PAYLOAD = "identity"
VERIFIED_METADATA_KEY = "verified_customer_id"
MAX_ID_CHARS = 255
MAX_NAME_CHARS = 200
METHODS = frozenset({"shop", "second_factor"})
SECOND_FACTOR_VALID = timedelta(hours=24)
# A shop's user ids: letters, digits and a few separators (no spaces, no look-alike digits).
USER_ID_RE = re.compile(r"[A-Za-z0-9_.:@+-]{1,255}")


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
    return isinstance(value, str) and USER_ID_RE.fullmatch(value) is not None


def personal_identity(channel: str, channel_user_id: str) -> bool:
    """Whether the channel identity is one person's own: a Telegram chat or a Slack DM (a
    mention thread's id is "channel:thread"), not a web browser."""
    return channel == "telegram" or (channel == "slack" and ":" not in channel_user_id)


def verified_as(
    conversation: Conversation,
    customer_verified_id: str | None,
    customer_verified_by: str | None,
    now: datetime,
    identity_linked_by: str | None = None,
) -> tuple[str, str] | None:
    """(the shop's customer id, how) this conversation counts as verified for, or None: its own
    verification (a shop-signed session for as long as it lasts, a second factor for
    SECOND_FACTOR_VALID), else the customer's on a personal identity that joined the customer
    by itself (one an agent linked by hand, ``identity_linked_by``, must verify first)."""
    if conversation.verified_id is not None and conversation.verified_by is not None:
        at = conversation.verified_at
        if conversation.verified_by == "shop" or (
            at is not None and now - at < SECOND_FACTOR_VALID
        ):
            return conversation.verified_id, conversation.verified_by
    if (
        customer_verified_id is not None
        and customer_verified_by is not None
        and personal_identity(conversation.channel, conversation.channel_user_id)
        and identity_linked_by is None
    ):
        return customer_verified_id, customer_verified_by
    return None


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
