"""Small HMAC-signed tokens (visitor tokens): any gateway replica with the secret can check them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(data: dict[str, Any], secret: str, purpose: str) -> str:
    """A token carrying ``data``; ``purpose`` keeps tokens of one kind from passing as another."""
    body = _b64(json.dumps({**data, "iat": int(time.time())}, separators=(",", ":")).encode())
    mac = hmac.new(secret.encode(), f"{purpose}.{body}".encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def unsign(
    token: str, secret: str, purpose: str, max_age_seconds: float | None = None
) -> dict[str, Any] | None:
    """The data of a valid token, or None when it is malformed, forged or too old."""
    try:
        body, mac = token.split(".")
        expected = hmac.new(secret.encode(), f"{purpose}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        data = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    if not isinstance(data, dict):
        return None
    if max_age_seconds is not None and time.time() - float(data.get("iat", 0)) > max_age_seconds:
        return None
    return data
