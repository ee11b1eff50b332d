"""Slack: direct messages and @mentions over the Events API, Block Kit buttons for bot buttons.

Slack POSTs events and button clicks to one URL, ``/slack/events``. slack-bolt verifies the
signature (and rejects timestamps older than five minutes), answers ``url_verification`` and
drops the app's own messages; our listeners turn what is left into ``InboundMessage`` and hand
it to ``accept()``. Conversation keys: a DM is its DM channel id (``D…``); a mention is
``"{channel}:{thread_ts}"``, so the whole thread is one conversation and we answer inside it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import SlackSettings
from bot.core.errors import DeliveryError
from bot.core.models import Conversation
from bot.core.types import Button, InboundMessage, SenderKind, StoredMessage
from bot.pipeline.intake import AcceptStatus, Intake
from connectors.base import ChannelConnector

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
    }
)
SECTION_LIMIT = 3000  # Block Kit section text; the full text still goes in the `text` field
BUTTON_TITLE_LIMIT = 75
USER_LOOKUP_SECONDS = 1.0  # users.info runs before the ack; Slack waits 3 s in all


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
        # Only plain DMs: channel messages reach us as app_mention, and subtypes are edits,
        # deletions, joins and bot posts, none of which is a customer talking.
        if event.get("channel_type") == "im" and not event.get("subtype"):
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
        await self._accept(message, event["channel"], thread_ts)

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
            text = f"*{_escape(message.sender_name)}:* {text}"
        kwargs: dict[str, Any] = {"channel": channel, "text": text}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        if message.buttons:
            kwargs["blocks"] = button_blocks(text, message.buttons)
        try:
            await self.client.chat_postMessage(**kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            retry_after = _retry_after(exc) if error == "ratelimited" else None
            raise DeliveryError(
                f"slack chat.postMessage: {error}",
                retry_after=retry_after,
                permanent=error in PERMANENT_ERRORS,
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"slack chat.postMessage: {exc!r}") from exc

    async def _post_quietly(self, channel: str, text: str, thread_ts: str | None) -> None:
        try:
            await self.client.chat_postMessage(channel=channel, text=text, thread_ts=thread_ts)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack notice not sent", channel=channel, error=str(exc))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def button_blocks(text: str, buttons: list[Button]) -> list[dict[str, Any]]:
    """A section with the text, then the buttons (Slack allows 25 per actions block)."""
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
    blocks += [
        {"type": "actions", "elements": elements[i : i + 25]} for i in range(0, len(elements), 25)
    ]
    return blocks


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
