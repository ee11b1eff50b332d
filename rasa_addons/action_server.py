"""The action server, locked down: bound to 127.0.0.1 and answering only Rasa (and the gateway).

``python -m rasa_addons.action_server --port 5055`` runs rasa-sdk's app for the ``actions``
package (in .venv-rasa) with one addition: every request but ``/health`` must carry the shared
secret as ``?token=`` (ACTION_SERVER_TOKEN in the environment). Rasa sends it because
endpoints.yml names it (``action_endpoint.token``). Without that, anyone who can reach the port
could post a hand-made tracker to ``/webhook`` and read any customer's orders.

It also serves ``GET /backend/customers/<id>``: the demo backend's read-only overview of one
customer (orders, devices, repairs) for the console's customer profile, behind a token of its
own (BACKEND_TOKEN: the gateway holds it; it opens no actions).
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import sys

from rasa_sdk.endpoint import create_app
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

TOKEN_ENV = "ACTION_SERVER_TOKEN"
BACKEND_TOKEN_ENV = "BACKEND_TOKEN"
OPEN_PATHS = frozenset({"/health"})
BACKEND_PREFIX = "/backend/"


def build_app(
    token: str, actions_package: str = "actions", backend_token: str | None = None
) -> object:
    """rasa-sdk's Sanic app with the token check in front of every route but /health. The
    read-only ``/backend/`` routes take ``backend_token`` (the gateway's) and nothing else: the
    gateway's key opens no actions, and Rasa's opens no customer records directly."""
    if not token:
        raise ValueError(f"{TOKEN_ENV} is empty: the action server must not run without it")
    app = create_app(actions_package, cors_origins=None)

    @app.middleware("request")
    async def require_token(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS:
            return None
        supplied = request.args.get("token") or ""
        if request.path.startswith(BACKEND_PREFIX):
            if not backend_token:
                return response.json(
                    {"error": f"the backend route is off: {BACKEND_TOKEN_ENV} is not set"},
                    status=404,
                )
            if hmac.compare_digest(supplied.encode(), backend_token.encode()):
                return None
            logger.warning("action server: refused a backend request without the right token")
            return response.json({"error": "a valid ?token= is required"}, status=401)
        if hmac.compare_digest(supplied.encode(), token.encode()):
            return None
        logger.warning("action server: refused a request without the right token")
        return response.json({"error": "a valid ?token= is required"}, status=401)

    @app.get("/backend/customers/<customer_id:int>")
    async def customer_overview(request: Request, customer_id: int) -> HTTPResponse:
        """Read-only: one customer's orders, devices and repairs, for the agents' console
        (the gateway asks with the same token Rasa uses)."""
        from actions.backend import customer_overview as overview

        found = overview(customer_id)
        if found is None:
            return response.json({"error": f"no customer {customer_id}"}, status=404)
        return response.json(found)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--actions", default="actions")
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(
            f"{TOKEN_ENV} is not set; `make run` generates one (var/action_server_token).",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.INFO)
    app = build_app(token, args.actions, os.environ.get(BACKEND_TOKEN_ENV) or None)
    app.run(host=args.host, port=args.port, workers=1, access_log=False)  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
