"""The one shape of an HTTP client error: ``{"error": code, "message": message}``.

Domain errors become HTTP statuses only at the route handlers (connectors/, the console); they
all answer with this helper, so every endpoint's errors read the same.
"""

from __future__ import annotations

from aiohttp import web


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)
