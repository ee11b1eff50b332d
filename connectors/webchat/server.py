"""Web chat endpoints: visitor sessions, the customer websocket, the widget files, the demo page.

Protocol (docs/widget.md): the widget POSTs /webchat/session for a signed visitor token, then
opens /webchat/ws?token=... . Frames in: sync {after_seq}, message {client_id, text, payload?}.
Frames out: ack, message, queue, agent_joined, state, error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from bot.appkeys import BROKER, SERVICE, SETTINGS, STORE
from bot.core.errors import BadMessage, ServiceError
from bot.core.signing import sign, unsign
from bot.core.state import ConversationState
from bot.core.types import InboundMessage
from bot.service import conversation_topic

log = structlog.get_logger(__name__)

STATIC = Path(__file__).parent / "static"
TOKEN_PURPOSE = "webchat-visitor"
TOKEN_MAX_AGE = 90 * 24 * 3600
CHANNEL = "webchat"
# Open customer sockets, closed on shutdown so a stop does not wait for idle widgets.
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("webchat_sockets")


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def visitor_from_token(request: web.Request, token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    data = unsign(token, request.app[SETTINGS].secret_key, TOKEN_PURPOSE, TOKEN_MAX_AGE)
    if data is None or not isinstance(data.get("v"), str) or not isinstance(data.get("c"), str):
        return None
    return data


async def create_session(request: web.Request) -> web.Response:
    """Issue (or confirm) a visitor token; a valid old token keeps its conversation."""
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:  # not JSON, or not UTF-8
        return json_error(400, "bad_request", 'The body must be JSON, e.g. {"token": null}.')
    if not isinstance(body, dict):
        return json_error(400, "bad_request", "The body must be a JSON object.")
    token = body.get("token")
    if token is not None and not isinstance(token, str):
        return json_error(400, "bad_request", "token must be a string or null.")
    store = request.app[STORE]
    if token:
        data = visitor_from_token(request, token)
        if data is None or await store.conversation(data["c"]) is None:
            return json_error(401, "invalid_token", "This chat session is not valid any more.")
        return web.json_response({"token": token, "conversation_id": data["c"]})
    visitor = uuid.uuid4().hex
    customer = await store.find_or_create_customer(CHANNEL, visitor, None)
    conversation = await store.create_conversation(customer.id, CHANNEL, visitor)
    token = sign(
        {"v": visitor, "c": conversation.id}, request.app[SETTINGS].secret_key, TOKEN_PURPOSE
    )
    return web.json_response({"token": token, "conversation_id": conversation.id})


class WebchatSocket:
    """One customer's open websocket: reads frames, forwards the conversation's events."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, visitor: str, conv: str):
        self.app = request.app
        self.ws, self.visitor, self.conversation_id = ws, visitor, conv

    async def send(self, frame: dict[str, Any]) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionResetError):
                await self.ws.send_json(frame)

    async def forward_events(self, subscription: Any) -> None:
        async for event in subscription:
            if event.get("type") == "resync":
                # Events were lost on the way: the widget reconnects and syncs by seq.
                await self.ws.close(code=1012, message=b"resync")
                return
            await self.send(event)

    async def on_sync(self, frame: dict[str, Any]) -> None:
        after = frame.get("after_seq", 0)
        if not isinstance(after, int) or after < 0:
            await self.error("bad_request", "after_seq must be a non-negative integer.")
            return
        store, service = self.app[STORE], self.app[SERVICE]
        for message in await store.messages(self.conversation_id, after_seq=after):
            await self.send({"type": "message", **message.to_dict()})
        conversation = await store.conversation(self.conversation_id)
        if conversation is None:
            return
        await self.send({"type": "state", "state": conversation.state.value})
        if conversation.state is ConversationState.QUEUED:
            position, eta = await service.queue_position(conversation.id)
            await self.send({"type": "queue", "position": position, "eta_seconds": round(eta)})

    async def on_message(self, frame: dict[str, Any]) -> None:
        client_id, text, payload = frame.get("client_id"), frame.get("text"), frame.get("payload")
        if not isinstance(client_id, str) or not 0 < len(client_id) <= 100:
            await self.error("bad_request", "client_id must be a string of 1-100 characters.")
            return
        if not isinstance(text, str) or (payload is not None and not isinstance(payload, str)):
            await self.error("bad_request", "text must be a string.", client_id)
            return
        service = self.app[SERVICE]
        try:
            accepted = await service.receive(
                InboundMessage(
                    channel=CHANNEL,
                    channel_user_id=self.visitor,
                    channel_message_id=client_id,
                    text=text,
                    payload=payload[:200] if payload else None,
                ),
                conversation_id=self.conversation_id,
            )
        except BadMessage as exc:
            await self.error(exc.code, str(exc), client_id)
            return
        except ServiceError as exc:
            await self.error("bad_request", str(exc), client_id)
            return
        # Persist, then acknowledge; the bot's answer follows as message frames.
        await self.send({"type": "ack", "client_id": client_id, "seq": accepted.message.seq})
        if accepted.needs_processing:
            service.process_soon(self.conversation_id)

    async def error(self, code: str, message: str, client_id: str | None = None) -> None:
        await self.send({"type": "error", "code": code, "message": message, "client_id": client_id})

    async def run(self) -> None:
        subscription = await self.app[BROKER].subscribe(conversation_topic(self.conversation_id))
        forwarder = asyncio.create_task(self.forward_events(subscription))
        try:
            async for raw in self.ws:
                if raw.type is not WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(raw.data)
                except json.JSONDecodeError:
                    await self.error("bad_request", "Frames must be JSON objects.")
                    continue
                kind = frame.get("type") if isinstance(frame, dict) else None
                if kind == "message":
                    await self.on_message(frame)
                elif kind == "sync":
                    await self.on_sync(frame)
                elif kind == "ping":
                    await self.send({"type": "pong"})
                else:
                    await self.error("bad_request", f"Unknown frame type {kind!r}.")
        finally:
            forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forwarder
            await subscription.close()


async def websocket(request: web.Request) -> web.StreamResponse:
    visitor = visitor_from_token(request, request.query.get("token"))
    if visitor is None or await request.app[STORE].conversation(visitor["c"]) is None:
        return json_error(401, "invalid_token", "A valid visitor token is required.")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024)
    await ws.prepare(request)
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    try:
        await WebchatSocket(request, ws, visitor["v"], visitor["c"]).run()
    finally:
        sockets.discard(ws)
    return ws


async def _close_sockets(app: web.Application) -> None:
    sockets: set[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=1001, message=b"server shutdown")


def _static(name: str, content_type: str) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            STATIC / name,
            headers={"Content-Type": content_type, "Cache-Control": "no-cache"},
        )

    return handler


def setup_webchat(app: web.Application) -> None:
    sockets: set[web.WebSocketResponse] = set()
    app[SOCKETS] = sockets
    app.on_shutdown.append(_close_sockets)
    app.router.add_post("/webchat/session", create_session)
    app.router.add_get("/webchat/ws", websocket)
    app.router.add_get("/widget.js", _static("widget.js", "application/javascript"))
    app.router.add_get("/widget.css", _static("widget.css", "text/css"))
    app.router.add_get("/", _static("demo.html", "text/html"))
