"""Files in S3-compatible storage (``files.storage: s3``) against a real local S3 server (moto's
``moto_server``, started here): the gateway's uploads land in the bucket and come back byte
for byte; a storage that does not answer gets a clear 503 and stores nothing."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import boto3
import pytest

from bot.appkeys import STORE
from bot.config import S3Settings
from bot.filestore import S3FileStorage, StorageUnavailable
from scripts import devctl
from tests.gateway_fixtures import gateway_settings, running_gateway
from tests.helpers import CustomerClient, dead_port, png_bytes

BUCKET = "csbot-files"
CREDENTIALS = {"access_key_id": "test-key", "secret_access_key": "test-secret"}


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    port = devctl.free_port()
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="test-key",
            aws_secret_access_key="test-secret",
        )
        deadline = time.monotonic() + 120  # its imports are slow on a busy machine
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    said = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    pytest.fail(f"moto_server did not start (pip install 'moto[server]'): {said}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def bucket_keys(url: str) -> list[str]:
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
    )
    return [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


async def test_put_get_and_missing(s3_url: str) -> None:
    settings = S3Settings(endpoint_url=s3_url, bucket=BUCKET, prefix="unit/", **CREDENTIALS)
    async with aiohttp.ClientSession() as session:
        storage = S3FileStorage(settings, session)
        key = uuid.uuid4().hex
        await storage.put(key, b"%PDF-1.4 guide")
        assert await storage.get(key) == b"%PDF-1.4 guide"
        assert f"unit/{key}" in bucket_keys(s3_url)
        with pytest.raises(FileNotFoundError):
            await storage.get(uuid.uuid4().hex)
        with pytest.raises(FileNotFoundError):
            await storage.get("../../etc/passwd")
        down = S3FileStorage(
            S3Settings(
                endpoint_url=f"http://127.0.0.1:{dead_port()}", bucket=BUCKET, **CREDENTIALS
            ),
            session,
        )
        with pytest.raises(StorageUnavailable):
            await down.put(key, b"x")
        wrong_bucket = S3FileStorage(
            S3Settings(endpoint_url=s3_url, bucket="no-such-bucket", **CREDENTIALS), session
        )
        with pytest.raises(StorageUnavailable, match="404"):
            await wrong_bucket.put(key, b"x")


async def test_gateway_uploads_go_to_the_bucket(
    s3_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    files = {
        "storage": "s3",
        "s3": {"endpoint_url": s3_url, "bucket": BUCKET, "prefix": "gw/", **CREDENTIALS},
    }
    settings = gateway_settings(tmp_path, f"http://127.0.0.1:{dead_port()}", None, files=files)
    photo = png_bytes(20, 20)
    async with running_gateway(settings) as gw:
        customer = await CustomerClient(gw.url, http).connect()
        try:
            form = aiohttp.FormData()
            form.add_field("token", customer.token or "")
            form.add_field("client_id", "photo-1")
            form.add_field("file", photo, filename="p.png", content_type="image/png")
            async with http.post(f"{gw.url}/webchat/files", data=form) as resp:
                assert resp.status == 200, await resp.text()
                attachment = (await resp.json())["attachment"]
            assert f"gw/{attachment['file_id']}" in bucket_keys(s3_url)
            assert not (tmp_path / "files").exists(), "nothing on the local disk"
            async with http.get(gw.url + attachment["url"]) as resp:
                assert resp.status == 200 and await resp.read() == photo
        finally:
            await customer.close()

    # The same gateway with a storage that does not answer: a 503 with what to do, no message.
    files["s3"]["endpoint_url"] = f"http://127.0.0.1:{dead_port()}"  # type: ignore[index]
    settings = gateway_settings(
        tmp_path / "down", f"http://127.0.0.1:{dead_port()}", None, files=files
    )
    (tmp_path / "down").mkdir()
    async with running_gateway(settings) as gw:
        customer = await CustomerClient(gw.url, http).connect()
        try:
            form = aiohttp.FormData()
            form.add_field("token", customer.token or "")
            form.add_field("client_id", "photo-2")
            form.add_field("file", photo, filename="p.png", content_type="image/png")
            async with http.post(f"{gw.url}/webchat/files", data=form) as resp:
                body = await resp.json()
                assert (resp.status, body["error"]) == (503, "storage_unavailable")
                assert "try again" in body["message"]
            assert await gw.app[STORE].messages(customer.conversation_id or "") == []
        finally:
            await customer.close()


def test_s3_storage_needs_its_settings() -> None:
    from bot.config import FileSettings

    with pytest.raises(ValueError, match=r"files\.s3"):
        FileSettings(storage="s3")
