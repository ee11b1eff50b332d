"""File storage: the bytes of the pictures and files customers and agents send.

:class:`LocalFileStorage` keeps them in a directory (``files.dir`` in gateway.yml, ``var/files``
by default), two levels of fan-out by the first characters of the random id, written to a
temporary name and renamed into place so a reader never sees half a file. Gateway replicas
that do not share a disk need shared storage there (a network volume), or
:class:`S3FileStorage`: a bucket of any S3-compatible service (``files.storage: s3``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import quote

import aiohttp

from bot.config import S3Settings

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
        try:
            await asyncio.to_thread(self._write, self._path(key), data)
        except OSError as exc:  # a full disk, a read-only or missing mount, permissions
            raise StorageUnavailable(f"{self.directory}: {exc.strerror or exc}") from exc

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


class StorageUnavailable(Exception):
    """The file storage did not answer (or refused): nothing was stored."""


class S3FileStorage:
    """A :class:`bot.core.ports.FileStorage` in an S3-compatible bucket, through the gateway's
    aiohttp session; botocore signs each request (Signature Version 4). Needs the ``s3``
    extra (``pip install .[s3]``)."""

    def __init__(self, settings: S3Settings, session: aiohttp.ClientSession) -> None:
        try:
            from botocore.auth import S3SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "files.storage is s3 but botocore is missing: pip install '.[s3]'"
            ) from exc
        self.settings, self.session = settings, session
        # S3's own flavour of SigV4: the path is signed as sent (not normalised or quoted
        # again), so prefixes with spaces, "=" or "//" sign right.
        self._signer = S3SigV4Auth(
            Credentials(settings.access_key_id, settings.secret_access_key), "s3", settings.region
        )
        self._request = AWSRequest
        self.timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)

    def _url(self, key: str) -> str:
        if not KEY_RE.fullmatch(key):
            raise FileNotFoundError(key)
        base = self.settings.endpoint_url.rstrip("/")
        return f"{base}/{self.settings.bucket}/{quote(self.settings.prefix + key)}"

    def _signed(self, method: str, url: str, data: bytes = b"") -> dict[str, str]:
        request = self._request(
            method,
            url,
            data=data,
            headers={"x-amz-content-sha256": hashlib.sha256(data).hexdigest()},
        )
        self._signer.add_auth(request)
        return dict(request.headers.items())

    async def put(self, key: str, data: bytes) -> None:
        url = self._url(key)
        try:
            async with self.session.put(
                url, data=data, headers=self._signed("PUT", url, data), timeout=self.timeout
            ) as resp:
                if resp.status != 200:
                    detail = (await resp.text())[:200]
                    raise StorageUnavailable(f"S3 PUT answered {resp.status}: {detail}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageUnavailable(f"S3 unreachable: {exc or type(exc).__name__}") from exc

    async def get(self, key: str) -> bytes:
        url = self._url(key)
        try:
            async with self.session.get(
                url, headers=self._signed("GET", url), timeout=self.timeout
            ) as resp:
                if resp.status == 404:
                    raise FileNotFoundError(key)
                if resp.status != 200:
                    raise StorageUnavailable(f"S3 GET answered {resp.status}")
                return await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageUnavailable(f"S3 unreachable: {exc or type(exc).__name__}") from exc
