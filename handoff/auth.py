"""Agent authentication for the console: password hashing, signed session cookies, CSRF, login
throttling (handoff/throttle.py).

Sessions are stateless (an HMAC-signed cookie), so every gateway replica accepts a cookie that any
other replica issued, as long as they share ``secret_key``. The cookie carries the session's CSRF
token; pages hand it to the browser in a ``<meta>`` tag and the browser sends it back in the
``X-CSRF-Token`` header (JSON API) or the ``csrf_token`` form field (HTML forms).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bot.core.signing import Signer

SESSION_COOKIE = "csbot_session"
LOGIN_CSRF_COOKIE = "csbot_login_csrf"
COOKIE_PATH = "/console"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
DEFAULT_SESSION_TTL = 8 * 3600
# A session nobody used for this long is over; a request refreshes the clock once a minute.
DEFAULT_IDLE_SECONDS = 60 * 60
REFRESH_AFTER_SECONDS = 60
LOGIN_CSRF_TTL = 3600
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSION_PURPOSE = "csbot/console-session/v3"
LOGIN_CSRF_PURPOSE = "csbot/console-login-csrf/v2"

# Cookies longer than this are not ours (ours are ~150 characters); refuse before any work.
_MAX_COOKIE_CHARS = 2048

# --- passwords -------------------------------------------------------------------------------

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salt and parameters included)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; a malformed hash is just a mismatch."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than the current ones."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


# A real hash to verify against when the username is unknown, so that a login for an unknown
# user takes as long as one for a known user with a wrong password (no username probing by
# timing). Made lazily: hashing costs ~50 ms and most imports never log anyone in.
_dummy_hash: str | None = None


def burn_password_check(password: str) -> None:
    """Spend the time of one password check without any account behind it."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(16))
    verify_password(_dummy_hash, password)


# --- signed session cookie -------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """A decoded, verified, unexpired session cookie."""

    agent_id: int
    csrf: str
    expires_at: int  # unix seconds
    version: int = 0  # the agent's session_version when it was issued
    seen: int = 0  # unix seconds of the last request that refreshed the cookie


def _int(value: object) -> int | None:
    """``value`` if it is an int (not a bool), else None."""
    return value if type(value) is int else None


class SessionCodec:
    """Encodes and verifies session cookies: tokens of the gateway's one signer
    (bot/core/signing.py) with the agent, the session's CSRF token and an expiry."""

    def __init__(
        self,
        secret: str,
        ttl_seconds: int = DEFAULT_SESSION_TTL,
        *,
        idle_seconds: int = DEFAULT_IDLE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the session secret must not be empty")
        if ttl_seconds <= 0 or idle_seconds <= 0:
            raise ValueError("ttl_seconds and idle_seconds must be positive")
        self._signer = Signer(secret, clock)
        self.ttl_seconds, self.idle_seconds = ttl_seconds, idle_seconds
        self._clock = clock

    def _sign(self, payload: str) -> str:
        return self._signer.mac(SESSION_PURPOSE, payload)

    def encode(self, agent_id: int, csrf: str, version: int = 0) -> str:
        """A cookie value for ``agent_id`` that expires ``ttl_seconds`` from now (or after
        ``idle_seconds`` without a request), under the agent's session ``version``."""
        now = int(self._clock())
        return self._sign_session(agent_id, csrf, now + self.ttl_seconds, version, now)

    def refreshed(self, session: Session) -> str | None:
        """A cookie value with the idle clock reset, when it is worth sending (a minute after
        the last one); the session's absolute expiry stays."""
        now = int(self._clock())
        if now - session.seen < REFRESH_AFTER_SECONDS:
            return None
        return self._sign_session(
            session.agent_id, session.csrf, session.expires_at, session.version, now
        )

    def _sign_session(self, agent_id: int, csrf: str, exp: int, version: int, seen: int) -> str:
        data = {"agent_id": agent_id, "csrf": csrf, "exp": exp, "sv": version, "seen": seen}
        return self._signer.sign(data, SESSION_PURPOSE)

    def decode(self, cookie: str | None) -> Session | None:
        """The session in ``cookie``, or None when it is missing, malformed, forged or expired."""
        if not cookie or len(cookie) > _MAX_COOKIE_CHARS:
            return None
        data = self._signer.unsign(cookie, SESSION_PURPOSE)
        if data is None:
            return None
        agent_id, exp, csrf = _int(data.get("agent_id")), _int(data.get("exp")), data.get("csrf")
        version, seen = _int(data.get("sv")), _int(data.get("seen"))
        if agent_id is None or exp is None or version is None or seen is None:
            return None
        if not isinstance(csrf, str) or not csrf:
            return None
        now = self._clock()
        if exp <= now or now - seen > self.idle_seconds:
            return None
        return Session(agent_id, csrf, exp, version, seen)

    # Login form CSRF: a signed double-submit token. The pre-session cookie holds a random nonce,
    # the form holds HMAC(nonce); a forged form cannot know the HMAC, and a planted cookie
    # (e.g. from a sibling subdomain) is useless without the matching form token.

    def login_csrf_pair(self) -> tuple[str, str]:
        """A fresh (cookie value, form token) pair for the login form."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self._login_token(nonce)

    def _login_token(self, nonce: str) -> str:
        return self._signer.mac(LOGIN_CSRF_PURPOSE, nonce)

    def check_login_csrf(self, cookie_value: str | None, form_token: str | None) -> bool:
        """Whether the login form's token belongs to the browser's pre-session cookie."""
        if not cookie_value or len(cookie_value) > 256:
            return False
        return csrf_matches(self._login_token(cookie_value), form_token)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str | None, supplied: str | None) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    if not expected or not supplied:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), supplied.encode("utf-8", "replace"))


async def supplied_csrf_token(request: web.Request) -> str | None:
    """The CSRF token the request carries: the X-CSRF-Token header, else the csrf_token field of
    a form body (only read for form content types, so JSON bodies stay untouched)."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FORM_FIELD)
        if isinstance(value, str):
            return value
    return None


async def check_csrf(request: web.Request, session: Session) -> bool:
    """True for safe methods; for state-changing ones, whether the session's token was sent."""
    if request.method not in UNSAFE_METHODS:
        return True
    return csrf_matches(session.csrf, await supplied_csrf_token(request))


def csrf_error_response() -> web.Response:
    return web.json_response(
        {
            "error": "csrf",
            "message": "Missing or invalid CSRF token. Reload the page and try again.",
        },
        status=403,
    )


def unauthenticated_response() -> web.Response:
    return web.json_response(
        {"error": "unauthenticated", "message": "Your session has ended. Please sign in again."},
        status=401,
    )


# --- cookies ---------------------------------------------------------------------------------


def is_https(request: web.Request) -> bool:
    """Whether the browser talks https to us: directly, or through a TLS-terminating proxy that
    says so in X-Forwarded-Proto (trusting it can only make the cookie stricter)."""
    if request.secure:
        return True
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    return forwarded.split(",")[0].strip().lower() == "https"


def _set_cookie(
    response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


def set_session_cookie(
    response: web.StreamResponse, request: web.Request, value: str, max_age: int
) -> None:
    _set_cookie(response, request, SESSION_COOKIE, value, max_age)


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def set_login_csrf_cookie(response: web.StreamResponse, request: web.Request, value: str) -> None:
    _set_cookie(response, request, LOGIN_CSRF_COOKIE, value, LOGIN_CSRF_TTL)


def clear_login_csrf_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
