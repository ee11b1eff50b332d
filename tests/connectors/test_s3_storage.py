"""Files in S3-compatible storage (``files.storage: s3``) against a real local S3 server (moto's
``moto_server``, started here): the gateway's uploads land in the bucket and come back byte
for byte; a storage that does not answer gets a clear 503 and stores nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """moto's S3 server with request signatures checked (as real S3 does): the first actions
    are free, to make a user with a key; every later request must be signed with it."""
    port = devctl.free_port()
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        iam = boto3.client(
            "iam",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        deadline = time.monotonic() + 120  # its imports are slow on a busy machine
        while True:
            try:
                iam.create_user(UserName="gateway")
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    said = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    pytest.fail(f"moto_server did not start (pip install 'moto[server]'): {said}")
                time.sleep(0.2)
        iam.put_user_policy(
            UserName="gateway",
            PolicyName="everything",
            PolicyDocument='{"Version": "2012-10-17", "Statement": '
            '[{"Effect": "Allow", "Action": "*", "Resource": "*"}]}',
        )
        key = iam.create_access_key(UserName="gateway")["AccessKey"]
        account = {
            "url": url,
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
        }
        client(account).create_bucket(Bucket=BUCKET)
        yield account
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def client(account: dict[str, str]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=account["url"],
        region_name="us-east-1",
        aws_access_key_id=account["access_key_id"],
        aws_secret_access_key=account["secret_access_key"],
    )


def credentials(account: dict[str, str]) -> dict[str, str]:
    return {k: account[k] for k in ("access_key_id", "secret_access_key")}


def bucket_keys(account: dict[str, str]) -> list[str]:
    listed = client(account).list_objects_v2(Bucket=BUCKET)
    return [o["Key"] for o in listed.get("Contents", [])]


async def test_put_get_and_missing(s3: dict[str, str]) -> None:
    url, keys = s3["url"], credentials(s3)
    async with aiohttp.ClientSession() as session:
        for prefix in ("", "unit/", "csbot.files/2026-11/"):
            storage = S3FileStorage(
                S3Settings(endpoint_url=url, bucket=BUCKET, prefix=prefix, **keys), session
            )
            key = uuid.uuid4().hex
            await storage.put(key, b"%PDF-1.4 guide")  # signed right, or S3 answers 403
            assert await storage.get(key) == b"%PDF-1.4 guide"
            assert f"{prefix}{key}" in bucket_keys(s3)
        wrong = S3FileStorage(
            S3Settings(
                endpoint_url=url,
                bucket=BUCKET,
                access_key_id=keys["access_key_id"],
                secret_access_key="not-the-secret",
            ),
            session,
        )
        with pytest.raises(StorageUnavailable, match="403"):
            await wrong.put(uuid.uuid4().hex, b"x")
        with pytest.raises(FileNotFoundError):
            await storage.get(uuid.uuid4().hex)
        with pytest.raises(FileNotFoundError):
            await storage.get("../../etc/passwd")
        down = S3FileStorage(
            S3Settings(endpoint_url=f"http://127.0.0.1:{dead_port()}", bucket=BUCKET, **keys),
            session,
        )
        with pytest.raises(StorageUnavailable):
            await down.put(key, b"x")
        wrong_bucket = S3FileStorage(
            S3Settings(endpoint_url=url, bucket="no-such-bucket", **keys), session
        )
        with pytest.raises(StorageUnavailable, match="404"):
            await wrong_bucket.put(key, b"x")


async def test_gateway_uploads_go_to_the_bucket(
    s3: dict[str, str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    files = {
        "storage": "s3",
        "s3": {"endpoint_url": s3["url"], "bucket": BUCKET, "prefix": "gw/", **credentials(s3)},
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
            assert f"gw/{attachment['file_id']}" in bucket_keys(s3)
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
    for prefix in ("my files/", "env=prod/", "a//b/", "no-slash", "/abs/"):
        with pytest.raises(ValueError, match="prefix"):
            S3Settings(
                endpoint_url="http://s3",
                bucket=BUCKET,
                prefix=prefix,
                access_key_id="k",
                secret_access_key="s",
            )
