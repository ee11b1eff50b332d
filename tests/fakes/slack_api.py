"""A fake Slack for tests: the Web API as a real HTTP server, and Slack's side of the webhooks.

``FakeSlackApi`` answers ``/api/{method}`` on a random local port the way slack.com does (JSON
with ``ok``; 429 + Retry-After when rate limited), checks the bot token, records every call
with its parsed parameters, and lets a test queue failures. It also hosts the files a test
adds (``host_file``: private addresses that need the bot token, recorded as ``download``) and
takes uploads the way ``files_upload_v2`` makes them (``files.getUploadURLExternal``, the bytes
to the upload URL, ``files.completeUploadExternal``; finished uploads in ``shared``).
``SlackSender`` posts signed Events API and interactivity requests to the gateway, built from
the hand-written payloads in ``tests/fakes/data/slack_*.json``.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from tests.fakes import serve

DATA = Path(__file__).parent / "data"

BOT_USER_ID, BOT_ID, TEAM_ID = "U0BOT", "B0BOT", "T0TEST"
CUSTOMER_USER, CUSTOMER_DM = "U0CUSTOMER", "D0CUSTOMER"


def load_payload(name: str) -> dict[str, Any]:
    """A fresh copy of tests/fakes/data/slack_{name}.json."""
    return copy.deepcopy(json.loads((DATA / f"slack_{name}.json").read_text()))


def sign(body: str, signing_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature headers: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(
        signing_secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256
    ).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class SlackCall:
    """One Web API call as the fake saw it."""

    method: str
    params: dict[str, Any]
    token: str | None
    status: int
    response: dict[str, Any]
    at: float = field(default_factory=time.perf_counter)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    def buttons(self) -> list[dict[str, Any]]:
        """The Block Kit buttons of a chat.postMessage, in order."""
        return [
            element
            for block in self.params.get("blocks") or []
            if block.get("type") == "actions"
            for element in block["elements"]
        ]


@dataclass(frozen=True)
class SharedFile:
    """A file uploaded with files_upload_v2 and shared into a channel."""

    file_id: str
    filename: str
    title: str | None
    data: bytes
    channel: str | None
    initial_comment: str | None
    thread_ts: str | None


@dataclass
class _Failure:
    error: str
    status: int
    retry_after: int | None


class FakeSlackApi:
    """The Slack Web API methods the connector uses; anything else is ``unknown_method``."""

    def __init__(self, token: str = "xoxb-test") -> None:
        self.token = token
        self.calls: list[SlackCall] = []
        self.users: dict[str, dict[str, Any]] = {
            CUSTOMER_USER: {
                "id": CUSTOMER_USER,
                "name": "alex.customer",
                "real_name": "Alex Customer",
                "profile": {"display_name": "Alex", "real_name": "Alex Customer"},
            }
        }
        # Method (or "download") -> seconds its answers wait (a slow Slack).
        self.delays: dict[str, float] = {}
        self.hosted: dict[str, bytes] = {}  # file id -> bytes, served at its private address
        self.files_read = True  # False: the token lacks files:read (downloads get sign-in)
        self.shared: list[SharedFile] = []  # completed uploads
        self._uploading: dict[str, dict[str, Any]] = {}  # file id -> filename, length, data
        self._failures: dict[str, list[_Failure]] = {}
        self._ts = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def api_url(self) -> str:
        """What goes in channels.slack.api_base_url."""
        return f"{self.url}/api/"

    async def start(self) -> FakeSlackApi:
        self._runner, self.url = await serve(
            "/api/{method}",
            self._handle,
            {
                "/files-pri/{key}/{name:.+}": self._download,
                "/upload/v1/{file_id}": self._upload,
                "/signin": self._signin,
            },
        )
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeSlackApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def fail(
        self,
        method: str,
        error: str = "ratelimited",
        *,
        times: int = 1,
        retry_after: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``error`` (ratelimited: 429)."""
        status = 429 if error == "ratelimited" else 200
        if error == "ratelimited" and retry_after is None:
            retry_after = 1
        self._failures.setdefault(method, []).extend([_Failure(error, status, retry_after)] * times)

    def host_file(
        self, name: str, data: bytes, mimetype: str = "application/octet-stream"
    ) -> dict[str, Any]:
        """A file a customer shared: its object as a ``file_share`` message event lists it.
        Its private addresses serve ``data`` to a request with the bot token ("download")."""
        file_id = f"F0FILE{next(self._file_ids):04d}"
        self.hosted[file_id] = data
        base = f"{self.url}/files-pri/{TEAM_ID}-{file_id}"
        return {
            "id": file_id,
            "created": 1700000000,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1] if "." in name else "binary",
            "user": CUSTOMER_USER,
            "mode": "hosted",
            "size": len(data),
            "url_private": f"{base}/{name}",
            "url_private_download": f"{base}/download/{name}",
        }

    async def wait_for(
        self, predicate: Callable[[SlackCall], bool], *, timeout: float = 10.0
    ) -> SlackCall:
        """The first recorded call (any method) that matches, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for call in self.calls:
                if predicate(call):
                    return call
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [c.method for c in self.calls]
                raise AssertionError(f"no matching call in {timeout} s; saw {seen}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    def calls_to(self, method: str) -> list[SlackCall]:
        return [c for c in self.calls if c.method == method]

    def posts(self, channel: str | None = None) -> list[SlackCall]:
        """Successful chat.postMessage calls (to ``channel``, if given)."""
        return [
            c
            for c in self.calls_to("chat.postMessage")
            if c.ok and (channel is None or c.params.get("channel") == channel)
        ]

    async def wait_for_post(
        self,
        predicate: Callable[[SlackCall], bool] = lambda c: True,
        *,
        after: int = 0,
        timeout: float = 30.0,
    ) -> SlackCall:
        """The first successful chat.postMessage from index ``after`` of ``posts()`` matching."""
        deadline = time.monotonic() + timeout
        while True:
            for call in self.posts()[after:]:
                if predicate(call):
                    return call
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [str(c.params.get("text"))[:70] for c in self.posts()[after:]]
                raise AssertionError(f"no matching chat.postMessage in {timeout} s; saw {seen}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _params(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        token = token or params.pop("token", None)
        if self.delays.get(method):
            await asyncio.sleep(self.delays[method])
        status, body, headers = self._answer(method, params, token)
        self.calls.append(SlackCall(method, params, token, status, body))
        self._changed.set()
        return web.json_response(body, status=status, headers=headers)

    def _record(self, call: SlackCall) -> None:
        self.calls.append(call)
        self._changed.set()

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """A file's private address: the bytes with the bot token; without it Slack sends the
        browser to its sign-in page (a 302 to an HTML page)."""
        file_id = request.match_info["key"].removeprefix(f"{TEAM_ID}-")
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        queued = self._failures.get("download")
        status = 200
        if token != self.token or not self.files_read:
            status = 302
        elif queued:  # fail("download", ...): a 500 (429 for "ratelimited")
            status = queued.pop(0).status
            status = 500 if status == 200 else status
        elif file_id not in self.hosted:
            status = 404
        self._record(SlackCall("download", {"file_id": file_id}, token, status, {}))  # on arrival
        if self.delays.get("download"):
            await asyncio.sleep(self.delays["download"])
        if status == 302:
            raise web.HTTPFound(f"{self.url}/signin")
        if status != 200:
            return web.Response(status=status, text="error")
        return web.Response(body=self.hosted[file_id], content_type="application/octet-stream")

    async def _signin(self, request: web.Request) -> web.Response:
        return web.Response(
            text="<!DOCTYPE html><html>Sign in to Slack</html>", content_type="text/html"
        )

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL files.getUploadURLExternal handed out: takes the raw bytes."""
        file_id = request.match_info["file_id"]
        data = await request.read()
        pending = self._uploading.get(file_id)
        status = 200 if pending is not None and not pending.get("data") else 404
        if status == 200:
            assert pending is not None
            pending["data"] = data
        self._record(SlackCall("upload", {"file_id": file_id, "size": len(data)}, None, status, {}))
        return web.Response(status=status, text=f"OK - {len(data)}" if status == 200 else "")

    def _get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        filename, length = params.get("filename"), str(params.get("length") or "")
        if not filename or not length.isdigit() or int(length) < 1:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F0UP{next(self._file_ids):04d}"
        self._uploading[file_id] = {"filename": filename, "length": int(length)}
        return {"ok": True, "upload_url": f"{self.url}/upload/v1/{file_id}", "file_id": file_id}

    def _complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        shared = []
        for item in files:
            pending = self._uploading.get(str(item.get("id")))
            if pending is None or len(pending.get("data") or b"") != pending["length"]:
                return {"ok": False, "error": "file_not_found"}
            shared.append((str(item["id"]), item.get("title"), pending))
        files_out = []
        for file_id, title, pending in shared:
            del self._uploading[file_id]
            self.shared.append(
                SharedFile(
                    file_id,
                    pending["filename"],
                    title,
                    pending["data"],
                    params.get("channel_id"),
                    params.get("initial_comment"),
                    params.get("thread_ts"),
                )
            )
            files_out.append({"id": file_id, "name": pending["filename"], "title": title})
        return {"ok": True, "files": files_out}

    def _answer(
        self, method: str, params: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if token != self.token:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        queued = self._failures.get(method)
        if queued:
            failure = queued.pop(0)
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            return failure.status, {"ok": False, "error": failure.error}, headers
        if method == "auth.test":
            return 200, self._auth_test(), {}
        if method == "chat.postMessage":
            if not params.get("channel"):
                return 200, {"ok": False, "error": "channel_not_found"}, {}
            if not params.get("text") and not params.get("blocks"):
                return 200, {"ok": False, "error": "no_text"}, {}
            ts = f"{1700001000 + next(self._ts)}.000100"
            message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": ts}
            message |= {k: params[k] for k in ("text", "blocks", "thread_ts") if k in params}
            return 200, {"ok": True, "channel": params["channel"], "ts": ts, "message": message}, {}
        if method == "users.info":
            user = self.users.get(str(params.get("user")))
            if user is None:
                return 200, {"ok": False, "error": "user_not_found"}, {}
            return 200, {"ok": True, "user": user}, {}
        if method == "files.getUploadURLExternal":
            return 200, self._get_upload_url(params), {}
        if method == "files.completeUploadExternal":
            return 200, self._complete_upload(params), {}
        if method == "conversations.open":
            users = str(params.get("users", ""))
            return 200, {"ok": True, "channel": {"id": "D" + users.removeprefix("U")}}, {}
        return 200, {"ok": False, "error": "unknown_method"}, {}

    def _auth_test(self) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://brightline-test.slack.com/",
            "team": "Brightline Test",
            "user": "brightline_support",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }


async def _params(request: web.Request) -> dict[str, Any]:
    """Query string plus JSON or form body; form-encoded blocks arrive as a JSON string."""
    params: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            params |= await request.json()
        else:
            params |= dict(await request.post())
    for key in ("blocks", "attachments", "files"):
        if isinstance(params.get(key), str):
            params[key] = json.loads(params[key])
    return params


@dataclass
class WebhookResult:
    status: int
    text: str
    elapsed_ms: float

    def json(self) -> Any:
        return json.loads(self.text)


class SlackSender:
    """Slack's side of the webhooks: signed event callbacks and button clicks from one user."""

    def __init__(
        self,
        gateway_url: str,
        signing_secret: str,
        http: aiohttp.ClientSession,
        *,
        user: str = CUSTOMER_USER,
        dm_channel: str = CUSTOMER_DM,
    ) -> None:
        self.url = f"{gateway_url}/slack/events"
        self.secret, self.http = signing_secret, http
        self.user, self.dm_channel = user, dm_channel
        self.timings_ms: list[float] = []
        self._ids = itertools.count(1)

    def next_ts(self) -> str:
        return f"{1700000000 + next(self._ids)}.000200"

    async def post(
        self,
        body: str,
        content_type: str = "application/json",
        *,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        signed: bool = True,
    ) -> WebhookResult:
        """POST a raw body, signed with the secret (unless ``signed`` is False)."""
        all_headers = {"Content-Type": content_type, **(headers or {})}
        if signed:
            all_headers = {**sign(body, self.secret, timestamp), **all_headers}
        started = time.perf_counter()
        async with self.http.post(self.url, data=body.encode(), headers=all_headers) as resp:
            text = await resp.text()
        elapsed = (time.perf_counter() - started) * 1000
        self.timings_ms.append(elapsed)
        return WebhookResult(resp.status, text, elapsed)

    async def send_event(
        self, payload: dict[str, Any], *, retry_num: int | None = None, **kw: Any
    ) -> WebhookResult:
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.post(json.dumps(payload), headers=headers, **kw)

    def dm_event(self, text: str, *, event_id: str | None = None) -> dict[str, Any]:
        payload = load_payload("dm_event")
        ts = self.next_ts()
        payload["event"] |= {
            "text": text,
            "user": self.user,
            "channel": self.dm_channel,
            "ts": ts,
            "event_ts": ts,
        }
        payload["event"].pop("client_msg_id", None)
        payload["event_id"] = event_id or f"Ev{self.user}{ts.replace('.', '')}"
        return payload

    def mention_event(
        self, text: str, *, channel: str = "C0SUPPORT", thread_ts: str | None = None
    ) -> dict[str, Any]:
        payload = load_payload("app_mention_event")
        ts = self.next_ts()
        payload["event"] |= {
            "text": f"<@{BOT_USER_ID}> {text}",
            "user": self.user,
            "channel": channel,
            "ts": ts,
            "event_ts": ts,
        }
        if thread_ts:
            payload["event"]["thread_ts"] = thread_ts
        payload["event_id"] = f"EvM{self.user}{ts.replace('.', '')}"
        return payload

    async def dm(self, text: str, **kw: Any) -> WebhookResult:
        return await self.send_event(self.dm_event(text), **kw)

    def click_payload(self, post: SlackCall, title: str) -> dict[str, Any]:
        """A block_actions payload for pressing the button ``title`` of a posted message."""
        button = next((b for b in post.buttons() if b["text"]["text"] == title), None)
        assert button is not None, f"no button {title!r} in {post.buttons()}"
        payload = load_payload("block_actions")
        channel, message = post.params["channel"], post.response["message"]
        payload["user"] = {"id": self.user, "username": "alex", "name": "alex", "team_id": TEAM_ID}
        payload["channel"]["id"] = channel
        payload["container"] |= {"channel_id": channel, "message_ts": message["ts"]}
        if "thread_ts" in message:
            payload["container"]["thread_ts"] = message["thread_ts"]
        payload["message"] = message
        payload["actions"] = [
            {
                "action_id": button["action_id"],
                "block_id": "b2",
                "text": {**button["text"], "emoji": True},
                "value": button["value"],
                "type": "button",
                "action_ts": self.next_ts(),
            }
        ]
        return payload

    async def press(self, post: SlackCall, title: str, **kw: Any) -> WebhookResult:
        """Click a Block Kit button: interactivity arrives form-encoded as payload=<json>."""
        body = urlencode({"payload": json.dumps(self.click_payload(post, title))})
        return await self.post(body, "application/x-www-form-urlencoded", **kw)
