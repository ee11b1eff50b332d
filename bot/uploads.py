"""Reading one file upload (``multipart/form-data``) from an HTTP request, within limits.

The widget (``POST /webchat/files``) and the console (``POST /console/api/conversations/{id}/
files``) both send a form with a ``file`` part and a few short text fields. The body is read
from the stream part by part, so the app's small ``client_max_size`` does not apply and a file
over ``files.max_bytes`` is refused as soon as it passes the limit, without reading the rest
into memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from bot.core.files import FileRefused, too_large

# The text fields (token, client_id, caption) are short; more is a client bug.
MAX_FIELD_BYTES = 16 * 1024
MAX_PARTS = 10
CHUNK = 64 * 1024


@dataclass
class Upload:
    data: bytes
    filename: str | None
    fields: dict[str, str] = field(default_factory=dict)


async def read_upload(
    request: web.Request,
    max_bytes: int,
    timeout: float = 120.0,
    before_file: Callable[[dict[str, str]], Awaitable[None]] | None = None,
) -> Upload:
    """The request's ``file`` part and text fields; FileRefused (with its HTTP status) for a
    missing, oversized or malformed upload. ``before_file`` sees the fields sent before the
    file, when the file's part begins: it may refuse (raise) before any of its bytes are read,
    so an unauthorised upload costs no memory."""
    if not request.content_type.startswith("multipart/form-data"):
        raise FileRefused(
            "bad_request", "Send the file as multipart/form-data, in a field named 'file'.", 400
        )
    try:
        async with asyncio.timeout(timeout):
            return await _read(request, max_bytes, before_file)
    except TimeoutError:
        raise FileRefused(
            "request_timeout", "The upload took too long. Please try again.", 408
        ) from None
    except (ValueError, AssertionError, UnicodeDecodeError):
        raise FileRefused("bad_request", "The upload is not a valid multipart form.", 400) from None


async def _read(
    request: web.Request,
    max_bytes: int,
    before_file: Callable[[dict[str, str]], Awaitable[None]] | None,
) -> Upload:
    reader = await request.multipart()
    data: bytes | None = None
    filename: str | None = None
    fields: dict[str, str] = {}
    for _ in range(MAX_PARTS):
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise FileRefused("bad_request", "Nested multipart bodies are not accepted.", 400)
        if part.name == "file":
            if data is not None:
                raise FileRefused("bad_request", "Send one file at a time.", 400)
            if before_file is not None:
                await before_file(fields)
            data = await _read_part(part, max_bytes, too_large(max_bytes))
            # aiohttp's client percent-encodes the name; browsers send it as UTF-8.
            filename = unquote(part.filename) if part.filename else None
        elif part.name:
            limit = FileRefused("bad_request", f"The field {part.name!r} is too long.", 400)
            fields[part.name] = (await _read_part(part, MAX_FIELD_BYTES, limit)).decode("utf-8")
    else:
        raise FileRefused("bad_request", "The form has too many parts.", 400)
    if data is None:
        raise FileRefused("bad_request", "The form has no file (a part named 'file').", 400)
    return Upload(data, filename, fields)


async def _read_part(part: BodyPartReader, limit: int, over: FileRefused) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(CHUNK):
        size += len(chunk)
        if size > limit:
            raise over
        chunks.append(chunk)
    return b"".join(chunks)
