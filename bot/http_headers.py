"""Security headers for every response of the gateway (pages, widget files, APIs, errors).

Registered as an ``on_response_prepare`` signal, so error pages get them too. HTML pages may run
only the gateway's own scripts and styles (no inline code) and may not be framed; nothing is
MIME-sniffed; no referrer leaves; the ``Server`` header names no versions.
"""

from __future__ import annotations

from aiohttp import web

SERVER_NAME = "csbot"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["Server"] = SERVER_NAME
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if response.content_type == "text/html":
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
