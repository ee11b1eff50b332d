"""File storage: the bytes of the pictures and files customers and agents send.

:class:`LocalFileStorage` keeps them in a directory (``files.dir`` in gateway.yml, ``var/files``
by default), two levels of fan-out by the first characters of the random id, written to a
temporary name and renamed into place so a reader never sees half a file. Gateway replicas
that do not share a disk need shared storage there (a network volume).
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path

KEY_RE = re.compile(r"[0-9a-f]{32}")


class LocalFileStorage:
    """A :class:`bot.core.ports.FileStorage` on the local disk."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        if not KEY_RE.fullmatch(key):
            raise FileNotFoundError(key)
        return self.directory / key[:2] / key[2:4] / key

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
