"""What the gateway accepts as a picture or a file, decided from the bytes themselves.

A customer's or an agent's upload is never trusted for its name or its declared type: the
first bytes say what it is. Pictures (PNG, JPEG, GIF, WebP) are shown inline; PDFs and plain
text are offered for download. Everything else is refused with a reason a person can act on,
and anything that a browser could run (HTML, SVG, XML, scripts) is refused even when it is
named ``.txt`` or ``.png``. Served files carry the type found here, ``nosniff`` and a sandbox
policy (bot/app.py), so what was stored can only ever be displayed or downloaded.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bot.core.errors import ServiceError

__all__ = ["FileKind", "FileRefused", "identify", "safe_name", "too_large"]

IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}
FILE_TYPES = {"application/pdf": "pdf", "text/plain": "txt"}
# Markup a browser would render or run: refused as text, whatever the file is called.
_MARKUP = re.compile(rb"^\s*<[!?/a-zA-Z]")


class FileRefused(ServiceError):
    """An upload the gateway does not take: ``code`` is ``too_large``, ``unsupported_type`` or
    ``empty``; the message says what to do instead."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.status = code, status


@dataclass(frozen=True)
class FileKind:
    kind: str  # "image" or "file"
    content_type: str
    extension: str


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    head = data[:4096].lstrip(b"\xef\xbb\xbf")
    if _MARKUP.match(head) or b"<script" in data[:65536].lower():
        return "text/html"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r\f" for c in text[:65536]):
        return None
    return "text/plain"


def identify(data: bytes, allowed: frozenset[str], max_bytes: int) -> FileKind:
    """What ``data`` is, if the gateway takes it; FileRefused otherwise."""
    if not data:
        raise FileRefused("empty", "The file is empty.", 400)
    if len(data) > max_bytes:
        raise too_large(max_bytes, len(data))
    content_type = _sniff(data)
    if content_type is None or content_type not in allowed:
        accepted = ", ".join(sorted(_label(t) for t in allowed))
        what = "a web page or script" if content_type == "text/html" else "this type of file"
        raise FileRefused(
            "unsupported_type",
            f"Sorry, {what} can't be sent here. Accepted: {accepted}.",
            415,
        )
    if content_type in IMAGE_TYPES:
        return FileKind("image", content_type, IMAGE_TYPES[content_type])
    return FileKind("file", content_type, FILE_TYPES[content_type])


def too_large(max_bytes: int, size: int | None = None) -> FileRefused:
    """The error for a file over the limit (``size`` None: known only to be larger)."""
    what = f"is {_size(size)}" if size is not None else "is larger than that"
    return FileRefused(
        "too_large",
        f"The limit for a file is {_size(max_bytes)} and this one {what}. Please send a "
        "smaller one (a photo at a lower resolution, or a shorter document).",
        413,
    )


def safe_name(name: str | None, kind: FileKind) -> str:
    """A file name to show and to download as: the given one without path, control
    characters or quotes, at most 100 characters, with the extension of what the file is."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] not in "CZ" or c == " ")
    base = re.sub(r'["<>:|?*;]', "_", base).strip(" .")
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = stem[:90] or ("photo" if kind.kind == "image" else "file")
    return f"{stem}.{kind.extension}"


def _label(content_type: str) -> str:
    return {
        "image/png": "PNG",
        "image/jpeg": "JPEG",
        "image/gif": "GIF",
        "image/webp": "WebP",
        "application/pdf": "PDF",
        "text/plain": "plain text",
    }.get(content_type, content_type)


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    return f"{max(1, round(n / 1024))} KB"
