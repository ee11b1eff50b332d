"""Web chat endpoints: visitor sessions, the customer websocket, the widget files.

Protocol (docs/widget.md): the widget POSTs /webchat/session for a signed visitor token, then
opens /webchat/ws?token=... . Frames in: sync {after_seq}, message {client_id, text, payload?}.
Frames out (built in bot/core/frames.py): ack, message, queue, agent_joined, state, error.
Messages go through the same intake as every other channel (bot/pipeline/intake.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from bot.broker import Subscription
from bot.config import Settings
from bot.core.errors import BadMessage
from bot.core.files import FileRefused
from bot.core.frames import Frame, ack_frame, error_frame
from bot.core.identity import shop_hash_matches, valid_user_id
from bot.core.signing import Signer
from bot.core.tasks import cancel_and_wait
from bot.core.types import Attachment, InboundMessage, is_text
from bot.http_errors import json_error
from bot.http_headers import client_address
from bot.pipeline.intake import AcceptStatus, Intake
from bot.uploads import read_upload
from connectors.base import UsesIntake
from connectors.webchat.demo_shop import page_handler
from connectors.webchat.limits import SLOT_RENEW_SECONDS, SocketSlots, WebchatLimits

log = structlog.get_logger(__name__)

STATIC = Path(__file__).parent / "static"
TOKEN_PURPOSE = "webchat-visitor"
TOKEN_MAX_AGE = 90 * 24 * 3600
CHANNEL = "webchat"
# Sequence numbers are far below this; a larger after_seq is a client bug (or a probe).
MAX_SEQ = 2**53
# A customer's "typing" frames reach the consoles at most this often per socket.
TYPING_EVERY_SECONDS = 1.0
USER_HASH_RE = re.compile(r"[0-9a-fA-F]{64}")


class WebchatChannel(UsesIntake):
    """The web chat channel: session and websocket routes over the injected intake."""

    channel = CHANNEL

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.signer = Signer(settings.secret_key)
        self.limits = WebchatLimits(settings.limits, settings.redis_url)
        # Open customer sockets, closed on shutdown so a stop does not wait for idle widgets.
        self.sockets: set[web.WebSocketResponse] = set()

    async def stop(self) -> None:
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutdown")

    async def close(self) -> None:
        await self.limits.close()

    def add_routes(self, app: web.Application) -> None:
        app.on_shutdown.append(lambda _app: self.stop())
        app.on_cleanup.append(lambda _app: self.close())
        app.router.add_post("/webchat/session", self.create_session)
        app.router.add_get("/webchat/ws", self.websocket)
        app.router.add_post("/webchat/files", self.upload)
        app.router.add_get("/widget.js", _static("widget.js", "application/javascript"))
        app.router.add_get("/widget.css", _static("widget.css", "text/css"))
        app.router.add_get("/", page_handler(self.settings))
        app.router.add_get("/demo.js", _static("demo.js", "application/javascript"))
        app.router.add_get("/demo.css", _static("demo.css", "text/css"))

    def visitor_from_token(self, token: str | None) -> dict[str, Any] | None:
        if not token:
            return None
        data = self.signer.unsign(token, TOKEN_PURPOSE, TOKEN_MAX_AGE)
        if data is None or not isinstance(data.get("v"), str) or not isinstance(data.get("c"), str):
            return None
        return data

    async def create_session(self, request: web.Request) -> web.Response:
        """Issue (or confirm) a visitor token; a valid old token keeps its conversation.

        ``user`` ({"id", "hash"}) is the shop vouching for a signed-in customer: the hash must
        be HMAC-SHA256(identity.shop_secret, id). A token issued for another user (or for a
        signed-in user when none is given now) is not resumed: a new session starts, so the
        next person on a shared browser never sees the last one's conversation.
        """
        try:
            body = await request.json() if request.body_exists else {}
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested absurdly deep
            return json_error(400, "bad_request", 'The body must be JSON, e.g. {"token": null}.')
        if not isinstance(body, dict):
            return json_error(400, "bad_request", "The body must be a JSON object.")
        token = body.get("token")
        if token is not None and (not isinstance(token, str) or not is_text(token)):
            return json_error(400, "bad_request", "token must be a string or null.")
        user_id, refused = self._shop_user(body.get("user"))
        if refused is not None:
            return refused
        if token:
            data = self.visitor_from_token(token)
            if data is None:
                return json_error(401, "invalid_token", "This chat session is not valid any more.")
            if data.get("u") == user_id:
                return web.json_response(self._session(token, data["c"], user_id))
        address = client_address(request, self.settings.http.trusted_proxies)
        wait = await self.limits.new_session(address)
        if wait:
            response = json_error(
                429, "rate_limited", "Too many new chats from your address; try again shortly."
            )
            response.headers["Retry-After"] = str(wait)
            return response
        # Nothing is stored yet: the conversation (and a new customer) is written with the
        # visitor's first message, under the id the token names.
        visitor, conversation_id = uuid.uuid4().hex, uuid.uuid4().hex
        claims = {"v": visitor, "c": conversation_id, **({"u": user_id} if user_id else {})}
        token = self.signer.sign(claims, TOKEN_PURPOSE)
        return web.json_response(self._session(token, conversation_id, user_id))

    def _session(self, token: str, conversation_id: str, user_id: str | None) -> dict[str, Any]:
        return {
            "token": token,
            "conversation_id": conversation_id,
            "verified": user_id is not None,
            # The widget counts down to it as the customer types (gateway.yml limits:).
            "max_message_chars": self.settings.limits.max_message_chars,
            "max_file_bytes": self.settings.files.max_bytes,
        }

    def _shop_user(self, user: Any) -> tuple[str | None, web.Response | None]:
        """(the shop's user id, None) for a rightly signed ``user``, (None, None) for none,
        (None, an error response) otherwise."""
        if user is None:
            return None, None
        if (
            not isinstance(user, dict)
            or not valid_user_id(user.get("id"))
            or not isinstance(user.get("hash"), str)
            or not USER_HASH_RE.fullmatch(user["hash"])
        ):
            return None, json_error(
                400,
                "bad_request",
                'user must be {"id": "<the shop\'s user id>", "hash": "<64 hex digits>"}.',
            )
        secret = self.settings.identity.shop_secret
        if not secret:
            return None, json_error(
                403,
                "identity_not_configured",
                "This chat does not accept signed-in users: identity.shop_secret is not set.",
            )
        if not shop_hash_matches(secret, user["id"], user["hash"]):
            log.warning("webchat: refused a user whose hash does not match")
            return None, json_error(
                403,
                "identity_rejected",
                "user.hash does not match user.id: compute HMAC-SHA256(shop secret, user id) "
                "on the shop's server.",
            )
        return str(user["id"]), None

    async def upload(self, request: web.Request) -> web.Response:
        """A picture or file from the customer: multipart with ``token``, ``client_id`` (the
        dedupe key, like a message's) and an optional ``caption``, then ``file``. Everything
        but the file is checked before the file's bytes are read; a retry of a stored upload
        (same ``client_id``) answers with the stored message and stores nothing. It becomes a
        customer message; the socket then gets it as a message frame like any other."""
        admitted: dict[str, Any] = {}

        async def admit(fields: dict[str, str]) -> None:
            visitor = self.visitor_from_token(fields.get("token"))
            if visitor is None:
                raise _Answer(
                    json_error(
                        401,
                        "invalid_token",
                        "A valid visitor token is required (the token field, before the file).",
                    )
                )
            client_id, caption = fields.get("client_id"), fields.get("caption", "")
            if not client_id or len(client_id) > 100 or not is_text(client_id):
                raise _Answer(
                    json_error(
                        400, "bad_request", "client_id must be a string of 1-100 characters."
                    )
                )
            try:
                self.intake.check_text(caption)
            except BadMessage as exc:
                raise _Answer(json_error(400, exc.code, str(exc))) from None
            stored = await self.intake.already_stored(visitor["c"], client_id)
            if stored is not None:  # a retry of an upload that arrived
                raise _Answer(_upload_answer(stored.seq, client_id, stored.attachment))
            if await self.limits.new_message(visitor["c"]):
                raise _Answer(
                    json_error(429, "rate_limited", "You're sending messages too quickly.")
                )
            admitted.update(visitor=visitor, client_id=client_id, caption=caption)

        try:
            upload = await read_upload(request, self.intake.files.max_bytes, before_file=admit)
            attachment = await self.intake.files.save(upload.data, upload.filename, "customer")
        except _Answer as answer:
            return answer.response
        except FileRefused as exc:
            return json_error(exc.status, exc.code, str(exc))
        visitor, client_id = admitted["visitor"], admitted["client_id"]
        conversation_id = visitor["c"]
        await self.intake.start_conversation(
            CHANNEL, visitor["v"], conversation_id, visitor.get("u")
        )
        message = InboundMessage(
            channel=CHANNEL,
            channel_user_id=visitor["v"],
            channel_message_id=client_id,
            text=admitted["caption"],
            attachment=attachment,
        )
        result = await self.intake.accept(message, conversation_id, checks=())
        if result.status is AcceptStatus.REJECTED:
            return json_error(400, result.code or "bad_request", result.message or "")
        return _upload_answer(result.seq, client_id, attachment)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        visitor = self.visitor_from_token(request.query.get("token"))
        if visitor is None:
            return json_error(401, "invalid_token", "A valid visitor token is required.")
        slots, key = self.limits.sockets, visitor["v"]
        slot = await slots.take(key)
        if slot is None:
            return json_error(
                429, "rate_limited", "Too many open chat windows; close one and try again."
            )
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024)
        renewer = asyncio.create_task(_renew_slot(slots, key, slot))
        try:
            await ws.prepare(request)
            self.sockets.add(ws)
            await WebchatSocket(
                self.intake, ws, visitor["v"], visitor["c"], self.limits, visitor.get("u")
            ).run()
        finally:
            self.sockets.discard(ws)
            await cancel_and_wait(renewer)
            await slots.release(key, slot)
        return ws


class WebchatSocket:
    """One customer's open websocket: reads frames, forwards the conversation's events."""

    def __init__(
        self,
        intake: Intake,
        ws: web.WebSocketResponse,
        visitor: str,
        conv: str,
        limits: WebchatLimits,
        verified_id: str | None = None,
    ) -> None:
        self.intake, self.limits = intake, limits
        self.ws, self.visitor, self.conversation_id = ws, visitor, conv
        self.verified_id = verified_id  # the shop's id of a signed-in visitor
        self.stored = False  # whether the conversation is in the store yet
        self.last_typing = -TYPING_EVERY_SECONDS

    async def send(self, frame: Frame) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionResetError):
                await self.ws.send_json(frame)

    async def forward_events(self, subscription: Subscription) -> None:
        async for event in subscription:
            if event.get("type") == "resync":
                # Events were lost on the way: the widget reconnects and syncs by seq.
                await self.ws.close(code=1012, message=b"resync")
                return
            await self.send(event)

    async def on_sync(self, frame: dict[str, Any]) -> None:
        after = frame.get("after_seq", 0)
        if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= MAX_SEQ:
            await self.error("bad_request", "after_seq must be a non-negative integer.")
            return
        for out in await self.intake.replay(self.conversation_id, after):
            await self.send(out)

    async def on_message(self, frame: dict[str, Any]) -> None:
        client_id, text, payload = frame.get("client_id"), frame.get("text"), frame.get("payload")
        if (
            not isinstance(client_id, str)
            or not 0 < len(client_id) <= 100
            or not is_text(client_id)
        ):
            await self.error("bad_request", "client_id must be a string of 1-100 characters.")
            return
        if not isinstance(text, str) or (payload is not None and not isinstance(payload, str)):
            await self.error("bad_request", "text must be a string.", client_id)
            return
        if await self.limits.new_message(self.conversation_id):
            # Not stored: the widget keeps it and sends it again after a pause.
            await self.error("rate_limited", "You're sending messages too quickly.", client_id)
            return
        message = InboundMessage(
            channel=CHANNEL,
            channel_user_id=self.visitor,
            channel_message_id=client_id,
            text=text,
            payload=payload[:200] if payload else None,
        )
        # The widget has no echoes of its own and must hear about an empty message: no checks.
        if not self.stored:
            await self.intake.start_conversation(
                CHANNEL, self.visitor, self.conversation_id, self.verified_id
            )
            self.stored = True
        result = await self.intake.accept(message, self.conversation_id, checks=())
        if result.status is AcceptStatus.REJECTED:
            await self.error(result.code or "bad_request", result.message or "", client_id)
            return
        # Persist, then acknowledge; the bot's answer follows as message frames.
        assert result.seq is not None
        await self.send(ack_frame(client_id, result.seq))

    async def on_frame(self, frame: Any) -> None:
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "message":
            await self.on_message(frame)
        elif kind == "sync":
            await self.on_sync(frame)
        elif kind == "ping":
            await self.send({"type": "pong"})
        elif kind == "typing":
            # At most one every TYPING_EVERY_SECONDS per socket, whatever the client sends.
            now = time.monotonic()
            if now - self.last_typing >= TYPING_EVERY_SECONDS:
                self.last_typing = now
                await self.intake.customer_typing(self.conversation_id)
        else:
            await self.error("bad_request", f"Unknown frame type {kind!r}.")

    async def error(self, code: str, message: str, client_id: str | None = None) -> None:
        await self.send(error_frame(code, message, client_id))

    async def run(self) -> None:
        subscription = await self.intake.subscribe(self.conversation_id)
        forwarder = asyncio.create_task(self.forward_events(subscription))
        try:
            async for raw in self.ws:
                if raw.type is not WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(raw.data)
                except (ValueError, RecursionError):
                    await self.error("bad_request", "Frames must be JSON objects.")
                    continue
                try:
                    await self.on_frame(frame)
                except Exception as exc:
                    # One bad frame must not close the socket, nor fill the log with a traceback.
                    log.warning("webchat frame failed", error=type(exc).__name__)
                    await self.error("internal", "Something went wrong; please try again.")
        finally:
            await cancel_and_wait(forwarder)
            await subscription.close()


class _Answer(Exception):
    """An upload answered before its file is read (refused, or a retry already stored)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _upload_answer(seq: int | None, client_id: str, attachment: Attachment | None) -> web.Response:
    return web.json_response(
        {
            "seq": seq,
            "client_id": client_id,
            "attachment": attachment.to_dict() if attachment else None,
        }
    )


async def _renew_slot(slots: SocketSlots, visitor: str, slot: str) -> None:
    """Keep an open socket's slot from lapsing (see connectors/webchat/limits.py)."""
    while True:
        await asyncio.sleep(SLOT_RENEW_SECONDS)
        await slots.renew(visitor, slot)


def _static(name: str, content_type: str) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            STATIC / name,
            headers={"Content-Type": content_type, "Cache-Control": "no-cache"},
        )

    return handler
