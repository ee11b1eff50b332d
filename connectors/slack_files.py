"""Pictures and files on Slack, both ways, for the Slack connector (connectors/slack.py).

In: a message with ``files`` (subtype ``file_share``) names each file's private address; the
file is downloaded with the bot token (``files:read``) and stored like every upload
(bot/pipeline/files.py), which checks its type and size. Out: a stored file is uploaded with
``files_upload_v2`` (``files.getUploadURLExternal``, the bytes to the upload URL, then
``files.completeUploadExternal``) with the text as its comment; a picture that lives elsewhere
(the bot's ``image`` responses) is an image block that Slack fetches itself.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import DeliveryError, NotFound
from bot.core.files import too_large
from bot.core.types import Attachment
from bot.pipeline.files import Files

# How long an event with files is held before its ack (Slack gives up after 3 s, and the
# users.info lookup may already have taken 1 s); the download then finishes in the background.
FILE_WAIT_SECONDS = 1.5
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
CHUNK = 64 * 1024
# Where the bot token may be sent along with a download: Slack's own hosts (and the API's
# host, which is also the tests' fake Slack).
SLACK_HOSTS = ("slack.com", "slack-gov.com")


class DownloadFailed(Exception):
    """A file Slack named could not be fetched (no address, an error, a sign-in page)."""


def file_name(file: dict[str, Any]) -> str:
    return str(file.get("name") or file.get("title") or "file")


async def receive(
    http: aiohttp.ClientSession, file: dict[str, Any], token: str, files: Files, api_url: str
) -> Attachment:
    """Download and store one file of a message. FileRefused (too large, a type the gateway
    does not take) says why, for the customer; DownloadFailed, aiohttp.ClientError or
    TimeoutError: it could not be fetched."""
    url = file.get("url_private_download") or file.get("url_private")
    if not isinstance(url, str) or not url:
        # External (Google Drive, ...), deleted, or hidden by the workspace's plan.
        raise DownloadFailed(f"no download address (mode {file.get('mode')!r})")
    if not _is_slack(url, api_url):
        raise DownloadFailed(f"not a Slack address: {urlsplit(url).hostname}")
    size = file.get("size")
    if isinstance(size, int) and size > files.max_bytes:
        raise too_large(files.max_bytes, size)
    data = await _download(http, url, token, files.max_bytes)
    return await files.save(data, file_name(file), "customer")


def _is_slack(url: str, api_url: str) -> bool:
    """Whether the bot token may go to ``url``: the configured API host (a local fake in the
    tests), or Slack's own hosts over https only."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    api = urlsplit(api_url)
    if host and host == api.hostname and parts.scheme == api.scheme:
        return True
    return parts.scheme == "https" and any(host == h or host.endswith("." + h) for h in SLACK_HOSTS)


async def _download(http: aiohttp.ClientSession, url: str, token: str, max_bytes: int) -> bytes:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.get(url, headers=headers, timeout=DOWNLOAD_TIMEOUT) as resp:
        if resp.status != 200:
            raise DownloadFailed(f"HTTP {resp.status}")
        if resp.history and resp.content_type == "text/html":
            # Slack sends a request it does not accept to its sign-in page.
            raise DownloadFailed("Slack answered with its sign-in page: is files:read granted?")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise too_large(max_bytes)
            chunks.append(chunk)
    return b"".join(chunks)


async def upload(
    client: AsyncWebClient,
    files: Files,
    channel: str,
    thread_ts: str | None,
    attachment: Attachment,
    text: str,
) -> None:
    """A stored picture or file into the DM or thread, ``text`` as its comment. Slack's own
    errors are the caller's to map."""
    assert attachment.file_id is not None
    try:
        _, data = await files.read(attachment.file_id)
    except NotFound as exc:
        raise DeliveryError(str(exc), permanent=True) from exc
    kwargs: dict[str, Any] = {
        "channel": channel,
        "file": data,
        "filename": attachment.name,
        "title": attachment.name,
    }
    if text:
        kwargs["initial_comment"] = text
    if thread_ts:
        kwargs["thread_ts"] = thread_ts
    await client.files_upload_v2(**kwargs)


def image_block(attachment: Attachment) -> dict[str, Any]:
    return {"type": "image", "image_url": attachment.url, "alt_text": attachment.name or "image"}


def link(attachment: Attachment) -> str:
    """A picture or file elsewhere as a Slack link: ``<url|name>``."""
    name = attachment.name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<{attachment.url}|{name}>"
