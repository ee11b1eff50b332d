"""Telegram connector: a bot's private chats as a channel, through python-telegram-bot (PTB).

PTB's ``Application`` only matches updates to handlers here; it runs no web server of its own.
Updates come in through the gateway's own route (webhook mode, when ``public_url`` is set) or a
getUpdates loop (polling mode). Either way an update is acknowledged (HTTP 200, or moving the
getUpdates offset past it) only after it is stored, so Telegram re-sends what we did not store.
Outbound messages go out through ``deliver()``, which the outbox calls and retries.

Pictures and documents a customer sends are downloaded through the Bot API (``getFile``) and
stored like any upload (bot/pipeline/files.py); what the gateway refuses (too large, a type it
does not take) is answered with the reason in the chat. Pictures and files from agents or the
bot go out with ``sendPhoto`` / ``sendDocument``, the text as their caption.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

import structlog
from aiohttp import web
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.config import SettingsError, TelegramSettings
from bot.core.errors import DeliveryError
from bot.core.files import FileRefused
from bot.core.models import Conversation
from bot.core.types import (
    EDITED_PAYLOAD,
    UNSUPPORTED_PAYLOAD,
    Attachment,
    Button,
    InboundMessage,
    SenderKind,
    StoredMessage,
)
from bot.http_errors import json_error
from bot.pipeline.intake import AcceptResult, AcceptStatus, Intake
from connectors import telegram_files
from connectors.base import ChannelConnector
from connectors.telegram_files import DOWNLOAD_LIMIT

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
POLL_TIMEOUT = timedelta(seconds=25)  # how long Telegram holds getUpdates open when idle
MAX_TEXT = 4096  # Telegram's limit for one message
MAX_CALLBACK_DATA = 64  # bytes; Telegram's limit for a button's callback_data
LONG_PAYLOAD_PREFIX = "#p:"
LONG_PAYLOADS_KEPT = 10_000
MAX_UPDATE_ATTEMPTS = 5  # polling: an update whose handling keeps failing is then skipped

EXPIRED_BUTTON = "This button has expired. Please type your answer instead."

# Checked in this order: a GIF message also carries a document, a venue also a location.
ATTACHMENT_LABELS = (
    ("animation", "GIF"),
    ("sticker", "sticker"),
    ("photo", "photo"),
    ("video_note", "video message"),
    ("video", "video"),
    ("voice", "voice message"),
    ("audio", "audio"),
    ("document", "document"),
    ("venue", "venue"),
    ("location", "location"),
    ("contact", "contact"),
    ("poll", "poll"),
    ("dice", "dice"),
)

# Errors of the handlers of the update being processed. PTB awaits blocking handlers and error
# handlers inside process_update(), in the caller's task, so its error handler sees this list.
_update_errors: ContextVar[list[BaseException] | None] = ContextVar(
    "telegram_update_errors", default=None
)

Context = ContextTypes.DEFAULT_TYPE


class TelegramConnector(ChannelConnector):
    """Telegram private chats: webhook or polling in, ``sendMessage`` with inline buttons out."""

    channel = "telegram"

    def __init__(self, settings: TelegramSettings) -> None:
        super().__init__()
        self.settings = settings
        api = settings.api_base_url.rstrip("/")
        self.application: Application[Any, Any, Any, Any, Any, Any] = (
            ApplicationBuilder()
            .token(settings.token)
            .base_url(f"{api}/bot")
            .base_file_url(f"{api}/file/bot")
            .rate_limiter(AIORateLimiter())
            .updater(None)  # no PTB web server or poller: the gateway feeds process_update()
            .build()
        )
        private_message = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
        for handler in (
            CommandHandler("start", self._on_start, filters=private_message),
            MessageHandler(private_message & filters.TEXT, self._on_text),
            CallbackQueryHandler(self._on_button),
            # A GIF also carries a document (an MP4): it stays an unsupported kind.
            MessageHandler(
                private_message & (filters.PHOTO | (filters.Document.ALL & ~filters.ANIMATION)),
                self._on_file,
            ),
            MessageHandler(
                filters.ChatType.PRIVATE & filters.UpdateType.MESSAGES, self._on_unsupported
            ),
            TypeHandler(Update, self._on_other),  # channel posts, groups, my_chat_member, ...
        ):
            self.application.add_handler(handler)
        self.application.add_error_handler(self._on_error)
        self._ready = False
        self._starter: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._stopping = False
        self._handling = False  # the poller is storing updates; stop() lets it finish
        self._tasks: set[asyncio.Task[None]] = set()
        # Payloads too long for callback_data, by the short key sent instead (newest last).
        self._long_payloads: OrderedDict[str, str] = OrderedDict()

    @property
    def bot(self) -> ExtBot[Any]:
        bot: ExtBot[Any] = self.application.bot
        return bot

    @property
    def webhook_url(self) -> str | None:
        public = self.settings.public_url
        return public.rstrip("/") + WEBHOOK_PATH if public else None

    # --- lifecycle --------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        if self.webhook_url:
            app.router.add_post(WEBHOOK_PATH, self._webhook)

    async def start(self, intake: Intake) -> None:
        """Check the token and register the webhook (or start polling).

        A rejected token stops the gateway from starting: that is a settings mistake. Telegram
        being unreachable is not; the connector then keeps trying in the background.
        """
        await super().start(intake)
        try:
            await self._connect()
        except InvalidToken as exc:
            await self.bot.shutdown()
            raise SettingsError(
                "channels.telegram.token was rejected by Telegram; check TELEGRAM_BOT_TOKEN"
            ) from exc
        except TelegramError as exc:
            log.warning("telegram unreachable at start, retrying in background", error=str(exc))
            self._starter = asyncio.create_task(self._connect_until_done())

    async def _connect(self) -> None:
        await self.application.initialize()  # getMe: proves the token, learns the bot's name
        if self.webhook_url:
            await self.bot.set_webhook(
                url=self.webhook_url,
                secret_token=self.settings.secret_token,
                allowed_updates=ALLOWED_UPDATES,
            )
        else:
            # Telegram refuses getUpdates while a webhook is set.
            await self.bot.delete_webhook()
            self._poller = asyncio.create_task(self._poll())
        self._ready = True
        log.info(
            "telegram connected",
            bot=self.bot.username,
            mode="webhook" if self.webhook_url else "polling",
        )

    async def _connect_until_done(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await self._connect()
                return
            except InvalidToken:
                log.error("telegram rejected the bot token; the channel stays off")
                return
            except TelegramError as exc:
                delay = min(delay * 2, 60.0)
                log.warning("telegram still unreachable", error=str(exc), retry_in=delay)

    async def stop(self) -> None:
        """Stop polling (after the update being stored), finish replies in flight, close PTB.

        The webhook stays registered: Telegram keeps updates while we restart, and other
        replicas may still be serving it.
        """
        self._stopping = True
        for task in (self._starter, self._poller):
            if task is None:
                continue
            if task is not self._poller or not self._handling:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        self._ready = False
        await self.application.shutdown()
        await self.bot.shutdown()  # in case it never connected: the application was not set up

    def _later(self, action: Coroutine[Any, Any, Any], what: str) -> None:
        """Run a courtesy API call (a reply, a button answer) without holding up the webhook."""

        async def run() -> None:
            try:
                await action
            except TelegramError as exc:
                log.warning("telegram call failed", call=what, error=str(exc))
            except Exception:
                log.exception("telegram call failed", call=what)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- inbound: webhook and polling -------------------------------------------------------

    async def _webhook(self, request: web.Request) -> web.Response:
        expected = (self.settings.secret_token or "").encode()
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not expected or not hmac.compare_digest(given, expected):
            return json_error(403, "forbidden", f"Missing or wrong {SECRET_HEADER} header.")
        try:
            data = await request.json()
        except ValueError:
            return json_error(400, "bad_request", "The body must be a JSON Telegram update.")
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return json_error(400, "bad_request", "The body must be a JSON Telegram update.")
        if not self._ready:
            # Telegram retries later; by then the connector has (re)connected.
            return json_error(503, "not_ready", "The Telegram connector is starting.")
        try:
            update = Update.de_json(data, self.bot)
        except (KeyError, TypeError, ValueError):
            return json_error(400, "bad_request", "The body is not a valid Telegram update.")
        if not await self._process(update):
            return json_error(500, "failed", "The update could not be stored; please resend.")
        return web.json_response({"ok": True})

    async def _process(self, update: Update) -> bool:
        """Run the update through the handlers; False if one failed (nothing acknowledged)."""
        errors: list[BaseException] = []
        token = _update_errors.set(errors)
        try:
            await self.application.process_update(update)
        finally:
            _update_errors.reset(token)
        return not errors

    async def _poll(self) -> None:
        """getUpdates loop. The offset moves past an update only once it is stored, so an update
        fetched but not stored (a crash, a failing database) is fetched again."""
        offset: int | None = None
        failures = 0
        stuck_id, stuck = 0, 0  # the update that failed last, and how often in a row
        while not self._stopping:
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=POLL_TIMEOUT, allowed_updates=ALLOWED_UPDATES
                )
            except RetryAfter as exc:
                await asyncio.sleep(_retry_after(exc))
                continue
            except InvalidToken:
                log.error("telegram rejected the bot token; polling stopped")
                return
            except TelegramError as exc:  # network trouble, or a webhook / second poller
                failures += 1
                log.warning("telegram getUpdates failed", error=str(exc), failures=failures)
                await asyncio.sleep(min(2.0**failures, 30.0))
                continue
            failures = 0
            self._handling = True
            try:
                for update in updates:
                    if not await self._process(update):
                        stuck = stuck + 1 if stuck_id == update.update_id else 1
                        stuck_id = update.update_id
                        if stuck < MAX_UPDATE_ATTEMPTS:
                            # Most likely the database: pause, then fetch it again from offset.
                            await asyncio.sleep(1.0)
                            break
                        log.error("telegram update skipped", update_id=stuck_id, attempts=stuck)
                    offset = update.update_id + 1
                    if self._stopping:
                        break
            finally:
                self._handling = False
        if offset is not None:
            # Confirm what we stored, so a restart does not fetch it again.
            with contextlib.suppress(TelegramError):
                await self.bot.get_updates(offset=offset, timeout=timedelta(0))

    # --- handlers ---------------------------------------------------------------------------

    async def _on_start(self, update: Update, context: Context) -> None:
        # /start is how every Telegram chat begins: let the bot greet.
        await self._accept(update, "/start", payload="/greet", trusted=True)

    async def _on_text(self, update: Update, context: Context) -> None:
        assert update.message is not None and update.message.text is not None
        text = update.message.text
        if text.startswith("/"):
            # A Telegram command (/help), not a Rasa intent: Rasa would run "/restart" or any
            # "/intent" as such. Without the slash its NLU reads it as words.
            text = text.lstrip("/")
        await self._accept(update, text)

    async def _on_button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None
        chat = update.effective_chat
        if chat is None or chat.type != chat.PRIVATE:
            self._later(query.answer(), "answerCallbackQuery")
            log.info("telegram button outside a private chat ignored", update_id=update.update_id)
            return
        payload = self._payload_from(query.data or "")
        title = _button_title(query.message, query.data)
        if payload is None and title is None:
            self._later(query.answer(EXPIRED_BUTTON, show_alert=True), "answerCallbackQuery")
            return
        self._later(query.answer(), "answerCallbackQuery")
        result = await self._accept(update, title or payload or "", payload=payload)
        if result.status is AcceptStatus.ACCEPTED and isinstance(query.message, Message):
            # Remove the buttons, so an answer (or a rating) can't be given twice.
            self._later(query.message.edit_reply_markup(None), "editMessageReplyMarkup")

    async def _on_file(self, update: Update, context: Context) -> None:
        """A photo or a document: downloaded, stored as an upload, and accepted with its
        caption. Refused (too large, a type the gateway does not take): the customer is told
        why and nothing is stored. Not downloadable (Telegram unreachable, ...): a placeholder
        is stored instead, so an agent still sees that something was sent."""
        message, chat = update.message, update.effective_chat
        assert message is not None and chat is not None
        files = self.intake.files
        incoming = telegram_files.incoming_file(message, min(files.max_bytes, DOWNLOAD_LIMIT))
        caption = message.caption or ""
        try:
            attachment = await telegram_files.receive(self.bot, incoming, files)
        except FileRefused as exc:
            log.info("telegram file refused", update_id=update.update_id, code=exc.code)
            self._later(self.bot.send_message(chat.id, str(exc)), "sendMessage")
            return
        except TelegramError as exc:
            log.warning("telegram file download failed", update_id=update.update_id, error=str(exc))
            text = f"[{incoming.label} that could not be downloaded] {caption}".strip()
            await self._accept(update, text, payload=UNSUPPORTED_PAYLOAD, trusted=True)
            return
        await self._accept(update, caption, attachment=attachment)

    async def _on_unsupported(self, update: Update, context: Context) -> None:
        """Stickers, voice, videos, edits, ...: stored as a placeholder, answered politely."""
        message = update.effective_message
        assert message is not None
        # Stored for the agents as a placeholder; while the bot has the conversation, the
        # gateway answers it with a notice instead of sending it to Rasa (bot/service.py).
        if update.edited_message is not None:
            text = f"[edited message] {message.text or message.caption or _label(message)}"
            await self._accept(update, text, payload=EDITED_PAYLOAD, trusted=True)
        else:
            text = f"{_label(message)} {message.caption or ''}".strip()
            await self._accept(update, text, payload=UNSUPPORTED_PAYLOAD, trusted=True)

    async def _on_other(self, update: Update, context: Context) -> None:
        # Nothing a customer wrote to us in a private chat: acknowledge (200) and move on.
        kinds = [k for k, v in update.to_dict().items() if k != "update_id" and v]
        log.info("telegram update ignored", update_id=update.update_id, kind=",".join(kinds))

    async def _on_error(self, update: object, context: Context) -> None:
        errors = _update_errors.get()
        if errors is not None and context.error is not None:
            errors.append(context.error)
        log.error(
            "telegram update failed",
            update_id=getattr(update, "update_id", None),
            exc_info=context.error,
        )

    async def _accept(
        self,
        update: Update,
        text: str,
        payload: str | None = None,
        trusted: bool = False,
        attachment: Attachment | None = None,
    ) -> AcceptResult:
        chat, user = update.effective_chat, update.effective_user
        assert chat is not None
        result = await self.accept(
            InboundMessage(
                channel=self.channel,
                channel_user_id=str(chat.id),
                # update_id is unique per bot: a re-sent update is stored once.
                channel_message_id=f"u{update.update_id}",
                text=text,
                payload=payload,
                display_name=(user.full_name or None) if user else None,
                trusted_payload=trusted,
                attachment=attachment,
            )
        )
        if result.status is AcceptStatus.REJECTED and result.message:
            self._later(self.bot.send_message(chat.id, result.message), "sendMessage")
        return result

    # --- outbound ---------------------------------------------------------------------------

    async def deliver(self, conversation: Conversation, message: StoredMessage) -> None:
        if not self._ready:
            raise DeliveryError("the Telegram connector is not connected yet")
        chat_id = int(conversation.channel_user_id)
        text = message.text
        if message.sender_kind is SenderKind.AGENT and message.sender_name:
            text = f"{message.sender_name}: {text}".strip()
        keyboard = self._keyboard(message.buttons)
        try:
            if message.attachment is None:
                # Telegram needs text; a bot may send buttons alone.
                await self._send_text(chat_id, text if text.strip() else "Please choose:", keyboard)
            else:
                await telegram_files.send(
                    self.bot,
                    self.intake.files,
                    chat_id,
                    message.attachment,
                    text,
                    keyboard,
                    self._send_text,
                )
        except RetryAfter as exc:
            raise DeliveryError(str(exc), retry_after=_retry_after(exc)) from exc
        except (Forbidden, BadRequest) as exc:
            # Blocked by the customer, chat not found, text refused: resending will not help.
            raise DeliveryError(str(exc), permanent=True) from exc
        except TelegramError as exc:
            raise DeliveryError(str(exc)) from exc

    async def _send_text(
        self, chat_id: int, text: str, keyboard: InlineKeyboardMarkup | None
    ) -> None:
        parts = [text[i : i + MAX_TEXT] for i in range(0, len(text), MAX_TEXT)]
        for n, part in enumerate(parts, start=1):
            await self.bot.send_message(
                chat_id=chat_id,
                text=part,
                # The buttons go under the last part, next to the question they answer.
                reply_markup=keyboard if n == len(parts) else None,
            )

    async def typing(self, conversation: Conversation) -> None:
        """Telegram's "typing…" under the chat title (shown for 5 s or until a message)."""
        if self._ready:
            await self.bot.send_chat_action(
                chat_id=int(conversation.channel_user_id), action=ChatAction.TYPING
            )

    def _keyboard(self, buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
        if not buttons:
            return None
        keys = [
            InlineKeyboardButton(b.title, callback_data=self._callback_data(b.payload))
            for b in buttons
        ]
        # Short answers (Yes/No, a 1-5 rating) fit in one row; longer titles get a row each.
        rows = [keys] if all(len(b.title) <= 3 for b in buttons) else [[k] for k in keys]
        return InlineKeyboardMarkup(rows)

    def _callback_data(self, payload: str) -> str:
        if len(payload.encode()) <= MAX_CALLBACK_DATA and not payload.startswith(
            LONG_PAYLOAD_PREFIX
        ):
            return payload
        # Too long for Telegram: send a short key and remember the payload in this process.
        key = LONG_PAYLOAD_PREFIX + hashlib.sha256(payload.encode()).hexdigest()[:32]
        self._long_payloads[key] = payload
        self._long_payloads.move_to_end(key)
        while len(self._long_payloads) > LONG_PAYLOADS_KEPT:
            self._long_payloads.popitem(last=False)
        return key

    def _payload_from(self, data: str) -> str | None:
        """The payload behind a button's callback_data; None for a key we no longer know (a
        restart, another replica): then the button's title goes to the bot as plain text."""
        if data.startswith(LONG_PAYLOAD_PREFIX):
            return self._long_payloads.get(data)
        return data or None


def _label(message: Message) -> str:
    kind = next((label for attr, label in ATTACHMENT_LABELS if getattr(message, attr)), None)
    return f"[{kind or 'unsupported message'}]"


def _button_title(message: object, data: str | None) -> str | None:
    """The title of the pressed button, read from the keyboard of the message it was under."""
    if not isinstance(message, Message) or message.reply_markup is None or not data:
        return None
    for row in message.reply_markup.inline_keyboard:
        for button in row:
            if button.callback_data == data:
                return button.text
    return None


def _retry_after(exc: RetryAfter) -> float:
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
