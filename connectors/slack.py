"""Slack: direct messages and @mentions over the Events API, Block Kit buttons for bot buttons.

Slack POSTs events and button clicks to one URL, ``/slack/events``. slack-bolt verifies the
signature (and rejects timestamps older than five minutes), answers ``url_verification`` and
drops the app's own messages; our listeners turn what is left into ``InboundMessage`` and hand
it to ``accept()``. Conversation keys: a DM is its DM channel id (``D…``); a mention is
``"{channel}:{thread_ts}"``, so the whole thread is one conversation and we answer inside it.
Pictures and files, in and out, are in connectors/slack_files.py.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import SlackSettings
from bot.core.errors import DeliveryError
from bot.core.files import FileRefused
from bot.core.models import Conversation
from bot.core.types import (
    UNSUPPORTED_PAYLOAD,
    Attachment,
    Button,
    InboundMessage,
    SenderKind,
    StoredMessage,
)
from bot.pipeline.intake import AcceptStatus, Intake
from connectors import slack_files
from connectors.base import ChannelConnector
from connectors.slack_files import FILE_WAIT_SECONDS, DownloadFailed

log = structlog.get_logger(__name__)

EVENTS_PATH = "/slack/events"
BUTTON_ACTION = re.compile(r"^csbot_button_\d+$")
# Retrying these can never work: the channel is gone, we are not in it, or the token is bad.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "invalid_blocks",
        "msg_too_long",
        "missing_scope",  # e.g. files:write for an agent's file
        "file_uploads_disabled",
        "file_uploads_except_images_disabled",
    }
)
SECTION_LIMIT = 3000  # Block Kit section text; the full text still goes in the `text` field
BUTTON_TITLE_LIMIT = 75
USER_LOOKUP_SECONDS = 1.0  # users.info runs before the ack; Slack waits 3 s in all
FILE_EVENTS_KEPT = 1000  # events whose files are (being) stored, for Slack's retries


class SlackConnector(ChannelConnector):
    """The Slack channel: a bolt ``AsyncApp`` mounted on the gateway's aiohttp app."""

    channel = "slack"

    def __init__(self, settings: SlackSettings) -> None:
        super().__init__()
        self.settings = settings
        self.client = AsyncWebClient(token=settings.bot_token, base_url=settings.api_base_url)
        self._auth: AuthorizeResult | None = None
        self._names: dict[str, str | None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None  # file downloads
        # The work storing an event's files, by event key: Slack's retry of a slow one joins it.
        self._file_work: OrderedDict[str, asyncio.Task[None]] = OrderedDict()
        self.bolt = AsyncApp(
            signing_secret=settings.signing_secret,
            # `authorize` instead of `token=`: bolt then reuses the auth.test answer from
            # start() (bot user id, bot id for ignoring our own messages) instead of calling
            # auth.test itself inside the first event's 3 s. Bolt copies this client per
            # request (for its base_url) and gives it the token from the authorize result.
            # (Bolt also reads SLACK_BOT_TOKEN; when that is set it warns "`token` will be
            # unused", which is true and harmless: ours comes from the settings.)
            client=AsyncWebClient(base_url=settings.api_base_url),
            # (A lambda: bolt fills in parameters by name and would trip over a method's self.)
            authorize=lambda: self._authorize(),
            # Persist, then acknowledge: the listener stores the message (fast; the bot runs in
            # the background) before bolt answers 200, so a message Slack saw acked is never
            # lost, and a failed write is a 500 that Slack retries.
            process_before_response=True,
        )
        self.bolt.event("message")(self._on_message)
        self.bolt.event("app_mention")(self._on_mention)
        self.bolt.action(BUTTON_ACTION)(self._on_button)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(EVENTS_PATH, self._handle)

    async def start(self, intake: Intake) -> None:
        await super().start(intake)
        try:
            await self._authorize()
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            # A Slack outage must not stop the gateway (web chat still works); bolt's next
            # request retries auth.test through _authorize().
            log.error("slack auth.test failed; check channels.slack.bot_token", error=str(exc))

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    async def _authorize(self) -> AuthorizeResult:
        if self._auth is None:
            response = await self.client.auth_test()
            self._auth = AuthorizeResult.from_auth_test_response(
                auth_test_response=response, bot_token=self.settings.bot_token
            )
            log.info("slack bot identified", bot_user_id=self._auth.bot_user_id)
        return self._auth

    async def _handle(self, request: web.Request) -> web.Response:
        bolt_response = await self.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    # --- inbound ------------------------------------------------------------------------------

    async def _on_message(
        self, body: dict[str, Any], event: dict[str, Any], request: AsyncBoltRequest, ack: AsyncAck
    ) -> None:
        # Only DMs, plain or with files: channel messages reach us as app_mention, and the other
        # subtypes are edits, deletions, joins and bot posts, none of which is a customer talking.
        if event.get("channel_type") == "im" and event.get("subtype") in (None, "file_share"):
            await self._accept_event(body, event, request, event["channel"], thread_ts=None)
        await ack()

    async def _on_mention(
        self, body: dict[str, Any], event: dict[str, Any], request: AsyncBoltRequest, ack: AsyncAck
    ) -> None:
        thread_ts = event.get("thread_ts") or event["ts"]
        channel_user_id = f"{event['channel']}:{thread_ts}"
        await self._accept_event(body, event, request, channel_user_id, thread_ts=thread_ts)
        await ack()

    async def _on_button(
        self, body: dict[str, Any], action: dict[str, Any], request: AsyncBoltRequest, ack: AsyncAck
    ) -> None:
        container = body.get("container") or {}
        channel = container.get("channel_id") or body["channel"]["id"]
        thread_ts = container.get("thread_ts") or (body.get("message") or {}).get("thread_ts")
        # DM channel ids start with D; elsewhere our buttons only ever sit in a mention thread.
        if channel.startswith("D") or not thread_ts:
            channel_user_id, thread_ts = channel, None
        else:
            channel_user_id = f"{channel}:{thread_ts}"
        user = body["user"]["id"]
        message = InboundMessage(
            channel=self.channel,
            channel_user_id=channel_user_id,
            # A click has no event_id; its action_ts is unique per click (and kept on retries).
            channel_message_id=f"{action['action_ts']}:{user}",
            text=action["text"]["text"],
            payload=action.get("value"),
            display_name=await self._display_name(user),
            metadata={"slack_user": user, "retry": _retry_num(request)},
        )
        await self._accept(message, channel, thread_ts)
        await ack()

    async def _accept_event(
        self,
        body: dict[str, Any],
        event: dict[str, Any],
        request: AsyncBoltRequest,
        channel_user_id: str,
        thread_ts: str | None,
    ) -> None:
        user = event.get("user")
        message = InboundMessage(
            channel=self.channel,
            channel_user_id=channel_user_id,
            # event_id is the same on Slack's retries, so a retried event is stored once.
            channel_message_id=body.get("event_id") or f"{event['channel']}:{event['ts']}",
            text=self._clean_text(event.get("text") or ""),
            display_name=await self._display_name(user) if user else None,
            metadata={
                "from_self": self._is_own(event),
                "slack_user": user,
                "retry": _retry_num(request),
            },
        )
        files = event.get("files")
        if isinstance(files, list) and files and not message.metadata["from_self"]:
            await self._accept_files(message, files, event["channel"], thread_ts)
        else:
            await self._accept(message, event["channel"], thread_ts)

    async def _accept_files(
        self,
        message: InboundMessage,
        files: list[dict[str, Any]],
        channel: str,
        thread_ts: str | None,
    ) -> None:
        """Store the files of a message, holding the ack at most FILE_WAIT_SECONDS: a slow
        download finishes in the background, and Slack's retry of the event (it gave up
        waiting) joins that work instead of downloading again. A failure seen here is raised
        (a 500: Slack delivers the event again); one in the background is logged."""
        key = message.channel_message_id
        work = self._file_work.get(key)
        if work is None or (work.done() and (work.cancelled() or work.exception())):
            work = asyncio.create_task(self._store_files(message, files, channel, thread_ts))
            self._file_work[key] = work
            while len(self._file_work) > FILE_EVENTS_KEPT:
                self._file_work.popitem(last=False)
            self._tasks.add(work)
            work.add_done_callback(self._tasks.discard)
            work.add_done_callback(_log_failure)
        done, _ = await asyncio.wait({work}, timeout=FILE_WAIT_SECONDS)
        if work in done:
            work.result()
        else:
            log.info("slack files still downloading; acknowledged", event_id=key)

    async def _store_files(
        self,
        message: InboundMessage,
        files: list[dict[str, Any]],
        channel: str,
        thread_ts: str | None,
    ) -> None:
        """One message per file (key: event id and the file's index), the words with the
        first; a refused file is answered with the reason, one that cannot be fetched is
        stored as a placeholder."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        text = message.text
        for n, file in enumerate(files):
            name = slack_files.file_name(file)
            item = replace(message, channel_message_id=f"{message.channel_message_id}:{n}")
            try:
                attachment = await slack_files.receive(
                    self._http,
                    file,
                    self.settings.bot_token,
                    self.intake.files,
                    self.settings.api_base_url,
                )
            except FileRefused as exc:
                log.info("slack file refused", code=exc.code, event_id=message.channel_message_id)
                self._spawn(self._post_quietly(channel, f"{name}: {exc}", thread_ts))
                continue
            except (DownloadFailed, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("slack file download failed", file=file.get("id"), error=repr(exc))
                placeholder = f"[file {name} that could not be downloaded] {text}".strip()
                item = replace(
                    item, text=placeholder, payload=UNSUPPORTED_PAYLOAD, trusted_payload=True
                )
            else:
                item = replace(item, text=text, attachment=attachment)
            text = ""
            await self._accept(item, channel, thread_ts)
        if text:  # every file was refused: the words still count
            await self._accept(message, channel, thread_ts)

    async def _accept(self, message: InboundMessage, channel: str, thread_ts: str | None) -> None:
        result = await self.accept(message)
        if result.status is AcceptStatus.DUPLICATE:
            log.info("slack retry acknowledged", retry=message.metadata.get("retry"))
        elif result.status is AcceptStatus.REJECTED and result.message:
            # Tell the customer why (too long, …) without holding up the ack.
            self._spawn(self._post_quietly(channel, result.message, thread_ts))

    def _is_own(self, event: dict[str, Any]) -> bool:
        """Our own posts echoed back. Bolt drops these already once it knows our ids; this is
        the backstop (e.g. before auth.test ever succeeded), and covers any bot_message."""
        own_user = self._auth.bot_user_id if self._auth else None
        return bool(
            event.get("bot_id")
            or event.get("subtype") == "bot_message"
            or (own_user is not None and event.get("user") == own_user)
        )

    def _clean_text(self, text: str) -> str:
        """Drop the @mention of our bot and undo Slack's escaping of &, < and >."""
        if self._auth and self._auth.bot_user_id:
            text = text.replace(f"<@{self._auth.bot_user_id}>", "")
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()

    async def _display_name(self, user: str) -> str | None:
        """The customer's Slack name for the console, looked up once per user, never for long."""
        if user not in self._names:
            try:
                response = await asyncio.wait_for(
                    self.client.users_info(user=user), USER_LOOKUP_SECONDS
                )
                info: dict[str, Any] = response.get("user") or {}
                profile = info.get("profile") or {}
                self._names[user] = (
                    profile.get("display_name") or info.get("real_name") or info.get("name")
                ) or None
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning(
                    "slack users.info failed", user=user, error=str(exc) or type(exc).__name__
                )
                return None  # not cached: try again on the next message
        return self._names[user]

    # --- outbound -----------------------------------------------------------------------------

    async def deliver(self, conversation: Conversation, message: StoredMessage) -> None:
        channel, _, thread_ts = conversation.channel_user_id.partition(":")
        text = _escape(message.text)
        if message.sender_kind is SenderKind.AGENT and message.sender_name:
            text = f"*{_escape(message.sender_name)}:* {text}".strip()
        attachment = message.attachment
        try:
            if attachment is not None and attachment.file_id is not None:
                await slack_files.upload(
                    self.client, self.intake.files, channel, thread_ts, attachment, text
                )
                if message.buttons:
                    await self._post(channel, thread_ts, "", message.buttons, None)
            else:
                await self._post(channel, thread_ts, text, message.buttons, attachment)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            method = str(exc.response.api_url).rsplit("/", 1)[-1] or "api"
            retry_after = _retry_after(exc) if error == "ratelimited" else None
            raise DeliveryError(
                f"slack {method}: {error}",
                retry_after=retry_after,
                permanent=error in PERMANENT_ERRORS,
            ) from exc
        except (SlackRequestError, aiohttp.ClientError, TimeoutError) as exc:
            # SlackRequestError: the bytes did not reach the upload URL.
            raise DeliveryError(f"slack: {exc!r}") from exc

    async def _post(
        self,
        channel: str,
        thread_ts: str,
        text: str,
        buttons: list[Button],
        attachment: Attachment | None,
    ) -> None:
        """chat.postMessage: the text, a picture from elsewhere as an image block (a file
        from elsewhere as a link), then the buttons."""
        image = None
        if attachment is not None and attachment.url:
            if attachment.kind == "image":
                image = slack_files.image_block(attachment)
            else:
                text = f"{text}\n{slack_files.link(attachment)}".strip()
        kwargs: dict[str, Any] = {"channel": channel, "text": text}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        if buttons or image:
            kwargs["blocks"] = button_blocks(text, buttons, image)
            # The notification text (and what screen readers say first).
            kwargs["text"] = text or (attachment.name if attachment else "")
        try:
            await self.client.chat_postMessage(**kwargs)
        except SlackApiError as exc:
            if image is None or exc.response.get("error") != "invalid_blocks":
                raise
            # Slack could not fetch the picture: the link instead.
            assert attachment is not None
            log.info("slack refused the image block; sending the link", url=attachment.url)
            await self._post(channel, thread_ts, text, buttons, replace(attachment, kind="file"))

    async def _post_quietly(self, channel: str, text: str, thread_ts: str | None) -> None:
        try:
            await self.client.chat_postMessage(channel=channel, text=text, thread_ts=thread_ts)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack notice not sent", channel=channel, error=str(exc))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def button_blocks(
    text: str, buttons: list[Button], image: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """A section with the text, the image, then the buttons (Slack allows 25 per actions
    block)."""
    elements = [
        {
            "type": "button",
            "action_id": f"csbot_button_{n}",
            "text": {"type": "plain_text", "text": (b.title or b.payload)[:BUTTON_TITLE_LIMIT]},
            "value": b.payload,
        }
        for n, b in enumerate(buttons, start=1)
    ]
    blocks: list[dict[str, Any]] = []
    if text:
        section = text if len(text) <= SECTION_LIMIT else text[: SECTION_LIMIT - 1] + "…"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": section}})
    if image is not None:
        blocks.append(image)
    blocks += [
        {"type": "actions", "elements": elements[i : i + 25]} for i in range(0, len(elements), 25)
    ]
    return blocks


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("slack files not stored", exc_info=exc)


def _escape(text: str) -> str:
    """Slack reads <…> as links and mentions; a customer-visible "<3" must stay text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _retry_num(request: AsyncBoltRequest) -> str | None:
    values = request.headers.get("x-slack-retry-num")
    return values[0] if values else None


def _retry_after(exc: SlackApiError) -> float | None:
    for name, value in (exc.response.headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return float(value)
            except ValueError:
                return None
    return None
