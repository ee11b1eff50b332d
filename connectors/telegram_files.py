"""Pictures and files on Telegram, both ways, for the Telegram connector (connectors/telegram.py).

In: a customer's photo or document is fetched through the Bot API (``getFile``, then the file's
own address under ``base_file_url``) and stored like every upload (bot/pipeline/files.py), which
checks its type and size. Out: a stored picture goes as ``sendPhoto`` (a document when Telegram
would not take it as a photo), a stored file as ``sendDocument``, and a picture or file that
lives elsewhere (the bot's ``image`` responses) by its address, which Telegram fetches itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from telegram import Bot, InlineKeyboardMarkup, InputFile, Message
from telegram.error import BadRequest

from bot.core.errors import DeliveryError, NotFound
from bot.core.files import too_large
from bot.core.types import Attachment
from bot.pipeline.files import Files

log = structlog.get_logger(__name__)

MAX_CAPTION = 1024  # Telegram's limit for the caption of a photo or document
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile: bots may download files up to 20 MB
PHOTO_LIMIT = 10 * 1024 * 1024  # sendPhoto: larger pictures go as documents
UPLOAD_LIMIT = 50 * 1024 * 1024  # sendDocument: bots may send files up to 50 MB
DOWNLOAD_SECONDS = 60.0

SendText = Callable[[int, str, InlineKeyboardMarkup | None], Awaitable[None]]


@dataclass(frozen=True)
class IncomingFile:
    """The file a customer's message carries, as Telegram describes it."""

    file_id: str
    name: str | None
    size: int | None
    label: str  # for a placeholder: "photo", "document invoice.pdf"


def incoming_file(message: Message, limit: int) -> IncomingFile:
    """The photo (in the largest size that fits ``limit``) or document of ``message``."""
    if message.photo:
        # Telegram sends every photo in a few sizes, smallest first.
        fitting = [p for p in message.photo if p.file_size is None or p.file_size <= limit]
        size = (fitting or message.photo)[-1]
        return IncomingFile(size.file_id, "photo.jpg", size.file_size, "photo")
    document = message.document
    assert document is not None
    name = document.file_name
    label = f"document {name}" if name else "document"
    return IncomingFile(document.file_id, name, document.file_size, label)


async def receive(bot: Bot, incoming: IncomingFile, files: Files) -> Attachment:
    """Download and store a customer's file. FileRefused (too large, a type the gateway does
    not take) says why, for the customer; TelegramError: it could not be downloaded."""
    limit = min(files.max_bytes, DOWNLOAD_LIMIT)
    if incoming.size is not None and incoming.size > limit:
        raise too_large(limit, incoming.size)
    try:
        file = await bot.get_file(incoming.file_id)
    except BadRequest as exc:
        if "too big" in exc.message.lower():  # over the 20 MB bots may download
            raise too_large(limit) from exc
        raise
    if file.file_size is not None and file.file_size > limit:
        raise too_large(limit, file.file_size)
    data = bytes(await file.download_as_bytearray(read_timeout=DOWNLOAD_SECONDS))
    return await files.save(data, incoming.name, "customer")


async def send(
    bot: Bot,
    files: Files,
    chat_id: int,
    attachment: Attachment,
    text: str,
    keyboard: InlineKeyboardMarkup | None,
    send_text: SendText,
) -> None:
    """A picture or file with ``text`` as its caption (a longer text goes first, as its own
    message); the buttons go under the picture. Telegram errors are the caller's to map."""
    caption: str | None = text if text.strip() else None
    if caption is not None and len(caption) > MAX_CAPTION:
        await send_text(chat_id, caption, None)
        caption = None
    if attachment.file_id is not None:
        await _send_stored(bot, files, chat_id, attachment, attachment.file_id, caption, keyboard)
        return
    url = attachment.url or ""
    try:
        # Telegram fetches the address itself.
        if attachment.kind == "image":
            await bot.send_photo(chat_id, url, caption=caption, reply_markup=keyboard)
        else:
            await bot.send_document(chat_id, url, caption=caption, reply_markup=keyboard)
    except BadRequest as exc:
        # It could not (or it is no picture): the link instead. A chat that is gone fails
        # again there, and that error is the one raised.
        log.info("telegram refused the address; sending the link", error=str(exc))
        await send_text(chat_id, f"{caption}\n{url}" if caption else url, keyboard)


async def _send_stored(
    bot: Bot,
    files: Files,
    chat_id: int,
    attachment: Attachment,
    file_id: str,
    caption: str | None,
    keyboard: InlineKeyboardMarkup | None,
) -> None:
    try:
        record, data = await files.read(file_id)
    except NotFound as exc:
        raise DeliveryError(str(exc), permanent=True) from exc
    if len(data) > UPLOAD_LIMIT:
        raise DeliveryError(
            f"{attachment.name} is larger than the 50 MB Telegram takes from bots", permanent=True
        )
    extra: dict[str, Any] = {"caption": caption, "reply_markup": keyboard}
    # A GIF as a photo would be a still picture; as a document it stays animated.
    as_photo = attachment.kind == "image" and record.content_type != "image/gif"
    if as_photo and len(data) <= PHOTO_LIMIT:
        try:
            await bot.send_photo(chat_id, InputFile(data, filename=attachment.name), **extra)
            return
        except BadRequest as exc:
            # Telegram takes only some pictures as photos (size, proportions): send the file.
            # A chat that is gone fails again below, and that error is the one raised.
            log.info("telegram refused the photo; sending it as a document", error=str(exc))
    await bot.send_document(chat_id, InputFile(data, filename=attachment.name), **extra)
