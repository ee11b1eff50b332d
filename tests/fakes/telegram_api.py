"""A fake Telegram Bot API for tests: a real HTTP server, and Telegram's side of the webhook.

``FakeTelegramApi`` answers ``/bot{token}/{method}`` (GET or POST; JSON, form or multipart
parameters) on a random local port the way api.telegram.org does: ``{"ok": true, "result": ...}``
or ``{"ok": false, "error_code": ..., "description": ...}``. It records every call with its
parsed parameters (an uploaded file as an :class:`UploadedFile`), lets a test queue failures
(429 with ``retry_after``, 403, ...), serves queued updates to getUpdates (honouring
``offset``; long polls are held briefly), serves the files a test added (``getFile``, then
``/file/bot{token}/{file_path}``, recorded as ``downloadFile``), and can post updates to the
gateway's webhook with the secret it was registered with.

Updates are built from the hand-written payloads in ``tests/fakes/data/telegram_*.json``.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tests.fakes import serve

DATA = Path(__file__).parent / "data"

TOKEN = "7000000001:AAF-fake-token-for-tests_0123456789"
BOT_USER = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "Brightline Support",
    "username": "brightline_test_bot",
}
SAMPLE_CHAT_ID = 424242  # the customer in the payload files; load_update() swaps it
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# Form values arrive as strings; these are the parameters Telegram reads as numbers, flags or
# JSON (PTB sends non-string values JSON-encoded).
_INT_PARAMS = {"chat_id", "offset", "limit", "timeout", "message_id", "max_connections"}
_BOOL_PARAMS = {"drop_pending_updates", "show_alert", "disable_notification"}
_JSON_PARAMS = {"reply_markup", "allowed_updates", "entities", "link_preview_options"}
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile: bots may download files up to 20 MB
MAX_CAPTION = 1024


def load_update(
    name: str, *, update_id: int, chat_id: int | None = None, **message: Any
) -> dict[str, Any]:
    """A fresh copy of tests/fakes/data/telegram_{name}.json with a new ``update_id``.

    ``chat_id`` replaces the sample customer's id (user and private chat are the same id on
    Telegram); other keywords replace fields of the update's message, e.g. ``text="hi"``.
    """
    update: dict[str, Any] = _swap_id(
        json.loads((DATA / f"telegram_{name}.json").read_text()), chat_id
    )
    update["update_id"] = update_id
    if message:
        body = next(v for k, v in update.items() if k != "update_id")
        body.update(message)
    return update


def _swap_id(value: Any, chat_id: int | None) -> Any:
    if chat_id is None:
        return value
    if isinstance(value, dict):
        return {
            k: chat_id if k == "id" and v == SAMPLE_CHAT_ID else _swap_id(v, chat_id)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_swap_id(v, chat_id) for v in value]
    return value


@dataclass
class TelegramCall:
    """One Bot API call as the fake saw it, with the answer it gave."""

    method: str
    params: dict[str, Any]
    token: str
    status: int
    response: dict[str, Any]
    at: float = field(default_factory=time.perf_counter)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    def button_titles(self) -> list[str]:
        """The inline keyboard's button titles of a sendMessage, row by row."""
        keyboard = (self.params.get("reply_markup") or {}).get("inline_keyboard") or []
        return [button["text"] for row in keyboard for button in row]


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart call (sendPhoto, sendDocument, ...)."""

    filename: str | None
    content_type: str
    data: bytes


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None


class FakeTelegramApi:
    """The Bot API of one bot (``token``); use as ``async with FakeTelegramApi() as api``."""

    def __init__(self, token: str = TOKEN, max_poll_wait: float = 0.5) -> None:
        self.token = token
        self.max_poll_wait = max_poll_wait  # a long poll is held at most this long
        self.calls: list[TelegramCall] = []
        self.updates: list[dict[str, Any]] = []  # not yet confirmed by a getUpdates offset
        self.webhook: dict[str, Any] = {"url": ""}
        self.sent: dict[tuple[int, int], dict[str, Any]] = {}  # (chat, message_id) -> Message
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, bytes)
        self._failures: dict[str, deque[_Failure]] = {}
        self._message_ids = itertools.count(5001)
        self._update_ids = itertools.count(900_000_001)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.url = ""

    async def __aenter__(self) -> FakeTelegramApi:
        self._runner, self.url = await serve(
            "/bot{token}/{method}",
            self._handle,
            {"/file/bot{token}/{file_path:.+}": self._download},
        )
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what a test does ------------------------------------------------------------------

    def next_update_id(self) -> int:
        return next(self._update_ids)

    def fail_next(
        self,
        method: str,
        status: int,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls of ``method`` fail like Telegram would, e.g. 429 or 403."""
        text = description or {
            400: "Bad Request: chat not found",
            403: "Forbidden: bot was blocked by the user",
            429: f"Too Many Requests: retry after {retry_after}",
            500: "Internal Server Error",
        }.get(status, "Error")
        queue = self._failures.setdefault(method.lower(), deque())
        queue.extend(_Failure(status, text, retry_after) for _ in range(times))

    def add_file(self, file_id: str, data: bytes, file_path: str | None = None) -> str:
        """A file a customer sent, as Telegram keeps it: ``getFile(file_id)`` names its path,
        and the path serves ``data``. Returns the file id."""
        self.files[file_id] = (file_path or f"documents/file_{len(self.files)}", data)
        return file_id

    async def queue_update(self, update: dict[str, Any]) -> None:
        """An update for getUpdates (polling mode)."""
        async with self._changed:
            self.updates.append(update)
            self._changed.notify_all()

    async def post_to_webhook(
        self, gateway_url: str, update: dict[str, Any], secret: str | None = "registered"
    ) -> tuple[int, Any, float]:
        """POST an update to the registered webhook's path on ``gateway_url`` (where a reverse
        proxy would forward it), with the registered secret unless another is given. Returns
        status, parsed body and the milliseconds from sending to the full answer."""
        assert self._http is not None
        path = urlsplit(self.webhook["url"]).path or "/telegram/webhook"
        headers = {"Content-Type": "application/json"}
        secret = self.webhook.get("secret_token") if secret == "registered" else secret
        if secret is not None:
            headers[SECRET_HEADER] = secret
        started = time.perf_counter()
        async with self._http.post(
            gateway_url + path, data=json.dumps(update), headers=headers
        ) as resp:
            raw = await resp.read()
            elapsed = (time.perf_counter() - started) * 1000
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            return resp.status, body, elapsed

    def press_button(self, chat_id: int, title: str, update_id: int) -> dict[str, Any]:
        """The callback_query update Telegram sends when the customer presses the button
        ``title`` under the newest message the bot sent to ``chat_id`` that has one."""
        for (chat, _), message in sorted(self.sent.items(), key=lambda kv: -kv[0][1]):
            keyboard = (message.get("reply_markup") or {}).get("inline_keyboard") or []
            button = next((b for row in keyboard for b in row if b["text"] == title), None)
            if chat == chat_id and button is not None:
                update = load_update("callback_query", update_id=update_id, chat_id=chat_id)
                update["callback_query"].update(
                    id=f"cbq-{update_id}",
                    message=copy.deepcopy(message),
                    data=button["callback_data"],
                )
                return update
        raise AssertionError(f"no button {title!r} in the messages sent to chat {chat_id}")

    def calls_to(self, method: str, **params: Any) -> list[TelegramCall]:
        """The calls of ``method`` whose parameters include ``params``."""
        return [
            c
            for c in self.calls
            if c.method.lower() == method.lower()
            and all(c.params.get(k) == v for k, v in params.items())
        ]

    def sent_texts(self, chat_id: int) -> list[str]:
        """Texts of the sendMessage calls to ``chat_id`` that succeeded, in order."""
        return [c.params["text"] for c in self.calls_to("sendMessage", chat_id=chat_id) if c.ok]

    async def wait_for(
        self, predicate: Callable[[TelegramCall], bool], timeout: float = 10.0, after: int = 0
    ) -> TelegramCall:
        """The first call (from index ``after`` on) that matches, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                for call in self.calls[after:]:
                    if predicate(call):
                        return call
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(c.method, str(c.params.get("text", ""))[:50]) for c in self.calls]
                    raise AssertionError(f"no matching call within {timeout} s; saw {seen}")
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    pass

    async def wait_for_text(
        self, chat_id: int, expect: str, timeout: float = 10.0, after: int = 0
    ) -> TelegramCall:
        """The first successful sendMessage to ``chat_id`` whose text contains ``expect``."""
        return await self.wait_for(
            lambda c: (
                c.method == "sendMessage"
                and c.ok
                and c.params.get("chat_id") == chat_id
                and expect in c.params.get("text", "")
            ),
            timeout,
            after,
        )

    # --- the Bot API -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        params = await _params(request)
        if token != self.token:
            status, response = 401, _error(401, "Unauthorized")
        elif failure := self._take_failure(method):
            status, response = (
                failure.status,
                _error(failure.status, failure.description, failure.retry_after),
            )
        else:
            handler = getattr(self, f"_m_{method.lower()}", None)
            if handler is None:
                status, response = 404, _error(404, "Not Found")
            else:
                status, response = await handler(params)
        async with self._changed:
            self.calls.append(TelegramCall(method, params, token, status, response))
            self._changed.notify_all()
        return web.json_response(response, status=status)

    async def _download(self, request: web.Request) -> web.Response:
        """``GET /file/bot{token}/{file_path}``: the bytes of a file getFile named."""
        token, path = request.match_info["token"], request.match_info["file_path"]
        found = next((data for p, data in self.files.values() if p == path), None)
        body: bytes | dict[str, Any]
        if token != self.token:
            status, body = 401, _error(401, "Unauthorized")
        elif failure := self._take_failure("downloadFile"):
            status, body = failure.status, _error(failure.status, failure.description)
        elif found is None:
            status, body = 404, _error(404, "Not Found")
        else:
            status, body = 200, found
        response = {"ok": status == 200, "size": len(found or b"")}
        async with self._changed:
            self.calls.append(
                TelegramCall("downloadFile", {"file_path": path}, token, status, response)
            )
            self._changed.notify_all()
        if isinstance(body, bytes):
            return web.Response(body=body, content_type="application/octet-stream")
        return web.json_response(body, status=status)

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method.lower())
        return queue.popleft() if queue else None

    async def _m_sendchataction(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if params.get("action") not in {"typing", "upload_photo", "upload_document"}:
            return 400, _error(400, "Bad Request: wrong parameter action in request")
        return 200, _ok(True)

    async def _m_getme(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, _ok({**BOT_USER, "can_join_groups": True, "supports_inline_queries": False})

    async def _m_setwebhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        url = params.get("url") or ""
        if url and not url.startswith("https://"):
            return 400, _error(400, "Bad Request: bad webhook: An HTTPS URL must be provided")
        self.webhook = {k: v for k, v in params.items() if k != "certificate"}
        return 200, _ok(True, "Webhook was set")

    async def _m_deletewebhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.webhook = {"url": ""}
        if params.get("drop_pending_updates"):
            self.updates.clear()
        return 200, _ok(True, "Webhook was deleted")

    async def _m_getwebhookinfo(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        info = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }
        if self.webhook.get("allowed_updates"):
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return 200, _ok(info)

    async def _m_getupdates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.webhook.get("url"):
            return 409, _error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset, limit = params.get("offset") or 0, params.get("limit") or 100
        wait = min(float(params.get("timeout") or 0), self.max_poll_wait)
        deadline = time.monotonic() + wait
        async with self._changed:
            if offset:  # a positive offset confirms every update before it
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while not self.updates and (remaining := deadline - time.monotonic()) > 0:
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    break
            return 200, _ok(copy.deepcopy(self.updates[:limit]))

    async def _m_sendmessage(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id, text = params.get("chat_id"), params.get("text") or ""
        if not isinstance(chat_id, int):
            return 400, _error(400, "Bad Request: chat not found")
        if not text.strip():
            return 400, _error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return 400, _error(400, "Bad Request: message is too long")
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": BOT_USER,
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "date": int(time.time()),
            "text": text,
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self.sent[(chat_id, message["message_id"])] = message
        return 200, _ok(message)

    async def _m_getfile(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        file_id = str(params.get("file_id") or "")
        if file_id not in self.files:
            return 400, _error(400, "Bad Request: invalid file_id")
        path, data = self.files[file_id]
        if len(data) > DOWNLOAD_LIMIT:
            return 400, _error(400, "Bad Request: file is too big")
        return 200, _ok(
            {
                "file_id": file_id,
                "file_unique_id": f"uniq-{file_id[-12:]}",
                "file_size": len(data),
                "file_path": path,
            }
        )

    async def _m_sendphoto(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self._send_media("photo", params)

    async def _m_senddocument(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self._send_media("document", params)

    def _send_media(self, kind: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """sendPhoto / sendDocument: an upload (multipart), a file_id, or an http(s) URL that
        Telegram would fetch itself (not fetched here: fail_next() plays a failed fetch)."""
        chat_id, media = params.get("chat_id"), params.get(kind)
        if not isinstance(chat_id, int):
            return 400, _error(400, "Bad Request: chat not found")
        if not media:
            return 400, _error(400, f"Bad Request: there is no {kind} in the request")
        if isinstance(media, str) and not (
            media.startswith(("http://", "https://")) or media in self.files
        ):
            return 400, _error(400, "Bad Request: wrong file identifier/HTTP URL specified")
        caption = params.get("caption") or ""
        if len(caption) > MAX_CAPTION:
            return 400, _error(400, "Bad Request: message caption is too long")
        message_id = next(self._message_ids)
        size = len(media.data) if isinstance(media, UploadedFile) else 0
        described: dict[str, Any] = {
            "file_id": f"sent-{kind}-{message_id}",
            "file_unique_id": f"sent-{message_id}",
            "file_size": size,
        }
        if kind == "document" and isinstance(media, UploadedFile):
            described |= {"file_name": media.filename, "mime_type": media.content_type}
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": BOT_USER,
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "date": int(time.time()),
            kind: [described | {"width": 1, "height": 1}] if kind == "photo" else described,
        }
        if caption:
            message["caption"] = caption
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self.sent[(chat_id, message_id)] = message
        return 200, _ok(message)

    async def _m_answercallbackquery(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not params.get("callback_query_id"):
            return 400, _error(400, "Bad Request: query is too old and response timeout expired")
        return 200, _ok(True)

    async def _m_editmessagereplymarkup(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        key: tuple[Any, Any] = (params.get("chat_id"), params.get("message_id"))
        message = self.sent.get(key)
        if message is None:
            return 400, _error(400, "Bad Request: message to edit not found")
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        else:
            message.pop("reply_markup", None)
        return 200, _ok(message)


async def _params(request: web.Request) -> dict[str, Any]:
    """The call's parameters, from the query string and a JSON, form or multipart body."""
    params: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            params.update(body if isinstance(body, dict) else {})
            return params
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, str):
                params[key] = value
            elif isinstance(value, web.FileField):
                params[key] = UploadedFile(value.filename, value.content_type, value.file.read())
    return {k: _coerce(k, v) for k, v in params.items()}


def _coerce(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        if key in _INT_PARAMS:
            return int(value)
        if key in _JSON_PARAMS:
            return json.loads(value)
    except ValueError:
        return value
    if key in _BOOL_PARAMS:
        return value.lower() == "true"
    return value


def _ok(result: Any, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"ok": True, "result": result}
    if description:
        response["description"] = description
    return response


def _error(code: int, description: str, retry_after: int | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        response["parameters"] = {"retry_after": retry_after}
    return response
