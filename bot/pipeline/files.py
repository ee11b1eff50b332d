"""Uploads: check a picture or file, keep its bytes and its record, and read it back.

Every way a file comes in (the widget, the console, Telegram, Slack) ends here, so the limits
and the type check (bot/core/files.py) are the same for all of them. The bytes go to the file
storage (bot/filestore.py), the record to the ``files`` table; a message then carries an
:class:`~bot.core.types.Attachment` naming the file.
"""

from __future__ import annotations

import hashlib
import uuid

import structlog

from bot.config import FileSettings
from bot.core.clock import utcnow
from bot.core.errors import NotFound
from bot.core.files import FileRefused, identify, safe_name
from bot.core.models import StoredFile
from bot.core.ports import FileStorage
from bot.core.types import Attachment
from bot.filestore import StorageUnavailable
from bot.store import Store

log = structlog.get_logger(__name__)


class Files:
    def __init__(self, store: Store, storage: FileStorage, settings: FileSettings) -> None:
        self.store, self.storage, self.settings = store, storage, settings
        self.allowed = frozenset(settings.types)

    @property
    def max_bytes(self) -> int:
        return self.settings.max_bytes

    async def save(self, data: bytes, name: str | None, uploaded_by: str) -> Attachment:
        """Check ``data`` (FileRefused with the reason), store it, and return the attachment
        a message can carry."""
        kind = identify(data, self.allowed, self.settings.max_bytes)
        record = StoredFile(
            id=uuid.uuid4().hex,
            name=safe_name(name, kind),
            content_type=kind.content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            uploaded_by=uploaded_by,
            created_at=utcnow(),
        )
        # Bytes first: a record never names a file that is not there.
        try:
            await self.storage.put(record.id, data)
        except StorageUnavailable as exc:
            log.warning("file storage unavailable", error=str(exc))
            raise FileRefused(
                "storage_unavailable",
                "The file could not be stored just now. Please try again in a moment.",
                503,
            ) from exc
        await self.store.add_file(record)
        log.info("file stored", file_id=record.id, type=record.content_type, size=record.size)
        return Attachment(kind.kind, record.name, record.content_type, record.size, record.id)

    async def read(self, file_id: str) -> tuple[StoredFile, bytes]:
        """A stored file and its bytes; NotFound when either is missing, StorageUnavailable
        when the storage does not answer."""
        record = await self.store.stored_file(file_id) if len(file_id) == 32 else None
        if record is None:
            raise NotFound(f"no file {file_id}")
        try:
            data = await self.storage.get(record.id)
        except FileNotFoundError:
            raise NotFound(f"the bytes of file {file_id} are missing from the storage") from None
        return record, data
