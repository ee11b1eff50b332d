"""A stub Rasa server that answers at once: ``python -m bench.stub --port P``.

It speaks the parts of Rasa's HTTP interface the gateway uses:

* ``POST /webhooks/rest/webhook`` -> ``[{"recipient_id": sender, "text": ...}]``; a message
  containing "human" gets the bot's handoff signal (a ``custom`` payload) instead;
* ``POST /webhooks/gateway/webhook`` -> the same replies as ``{"messages": [...], "nlu": {...},
  "paused": false}``, like Rasa's gateway channel (rasa_addons/gateway_channel.py);
* ``GET /conversations/{id}/tracker`` -> a tracker with ``latest_message.intent``;
* ``POST /conversations/{id}/tracker/events`` (pause / resume) -> ``{}``;
* ``GET /status`` for readiness.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from aiohttp import web

HANDOFF_SIGNAL: dict[str, Any] = {
    "custom": {
        "handoff": {
            "version": 1,
            "reason": "customer_request",
            "reason_text": "Customer asked for a person",
            "priority": "normal",
            "team": "general",
            "steps_tried": [],
            "facts": {},
        }
    }
}
NLU = {"intent": "greet", "confidence": 0.99}
TRACKER = json.dumps(
    {"latest_message": {"intent": {"name": "greet", "confidence": 0.99}}, "slots": {}}
)


async def _replies(request: web.Request) -> list[dict[str, Any]]:
    body = await request.json()
    sender = str(body.get("sender", ""))
    text = str(body.get("message", ""))
    if "human" in text.lower():
        return [{"recipient_id": sender, **HANDOFF_SIGNAL}]
    return [{"recipient_id": sender, "text": "Sure, I can help with that."}]


async def webhook(request: web.Request) -> web.Response:
    return web.json_response(await _replies(request))


async def gateway_webhook(request: web.Request) -> web.Response:
    return web.json_response({"messages": await _replies(request), "nlu": NLU, "paused": False})


async def tracker(request: web.Request) -> web.Response:
    return web.Response(text=TRACKER, content_type="application/json")


async def tracker_event(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({})


async def status(request: web.Request) -> web.Response:
    return web.json_response({"model_file": "stub"})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", webhook)
    app.router.add_post("/webhooks/gateway/webhook", gateway_webhook)
    app.router.add_get("/conversations/{conversation_id}/tracker", tracker)
    app.router.add_post("/conversations/{conversation_id}/tracker/events", tracker_event)
    app.router.add_get("/status", status)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(create_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
