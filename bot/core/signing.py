"""HMAC-signed tokens, the one signer of the gateway: widget visitor tokens, console session
cookies and login-form CSRF tokens. Any gateway replica with the same secret can check them.

A token is ``base64url(JSON).base64url(HMAC-SHA256(secret, purpose + "." + body))``; the
purpose keeps a token of one kind from passing as another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and checks tokens with one secret; ``clock`` gives unix seconds (tests move it)."""

    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("the signing secret must not be empty")
        self._key = secret.encode("utf-8")
        self.clock = clock

    def mac(self, purpose: str, text: str) -> str:
        """base64url HMAC-SHA256 of ``text`` for ``purpose``."""
        message = f"{purpose}.{text}".encode()
        return b64encode(hmac.new(self._key, message, hashlib.sha256).digest())

    def sign(self, data: dict[str, Any], purpose: str) -> str:
        """A token carrying ``data`` and the time it was issued (``iat``)."""
        body = json.dumps({**data, "iat": int(self.clock())}, separators=(",", ":"))
        payload = b64encode(body.encode())
        return f"{payload}.{self.mac(purpose, payload)}"

    def unsign(
        self, token: str, purpose: str, max_age_seconds: float | None = None
    ) -> dict[str, Any] | None:
        """The data of a valid token, or None when it is malformed, forged or too old."""
        try:
            payload, mac = token.split(".")
            if not payload or not hmac.compare_digest(
                self.mac(purpose, payload).encode(), mac.encode()
            ):
                return None
            data = json.loads(b64decode(payload))
        except (ValueError, TypeError, UnicodeError):
            return None
        if not isinstance(data, dict):
            return None
        if max_age_seconds is not None:
            issued = data.get("iat")
            if not isinstance(issued, int | float) or self.clock() - issued > max_age_seconds:
                return None
        return data
