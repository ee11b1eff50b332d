"""Uploaded files: what the gateway knows of each (the bytes are in the file storage)."""

from __future__ import annotations

import sqlalchemy as sa

from bot.core.models import StoredFile
from bot.store.engine import StoreEngine
from bot.store.rows import to_stored_file
from bot.store.schema import files

__all__ = ["FilesMixin"]


class FilesMixin(StoreEngine):
    async def add_file(self, record: StoredFile) -> None:
        async with self._tx(write=True) as conn:
            await conn.execute(
                files.insert().values(
                    id=record.id,
                    name=record.name,
                    content_type=record.content_type,
                    size=record.size,
                    sha256=record.sha256,
                    uploaded_by=record.uploaded_by,
                    created_at=record.created_at,
                )
            )

    async def stored_file(self, file_id: str) -> StoredFile | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(files).where(files.c.id == file_id))).first()
        return to_stored_file(row) if row is not None else None
