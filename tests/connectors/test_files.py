"""Pictures and files through the gateway's own HTTP paths: the widget's upload, the console's,
and ``GET /files/...``. Real gateway, scripted Rasa (no model), SQLite and the local storage.

Bad input loses nothing and gets a reason; nothing uploaded can ever come back as a page or a
script (SVG and HTML are refused, whatever their names; what is served is sandboxed)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.appkeys import SERVICE, STORE
from handoff.auth import hash_password
from tests.fakes.rasa import ScriptedRasa
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, scripted_gateway
from tests.helpers import AgentClient, CustomerClient, stored_files

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
CAT = "https://images.example.test/cheer%20up.jpg"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    rasa = ScriptedRasa({"a person please": ("request_human", 0.99)}, images={"cheer me up": CAT})
    async with scripted_gateway(
        tmp_path, rasa, files={"dir": str(tmp_path / "files"), "max_bytes": 4096}
    ) as gw:
        await gw.app[STORE].add_agent("kim", "Kim", hash_password(AGENT_PASSWORD))
        yield gw


async def upload(
    http: aiohttp.ClientSession,
    url: str,
    data: bytes | None,
    name: str,
    content_type: str = "application/octet-stream",
    **fields: str,
) -> tuple[int, Any]:
    form = aiohttp.FormData()
    for key, value in fields.items():
        form.add_field(key, value)
    if data is not None:
        form.add_field("file", data, filename=name, content_type=content_type)
    async with http.post(url, data=form) as resp:
        return resp.status, await resp.json()


async def customer_upload(
    gw: Gateway,
    http: aiohttp.ClientSession,
    customer: CustomerClient,
    data: bytes | None,
    name: str,
    **fields: str,
) -> tuple[int, Any]:
    fields = {"token": customer.token or "", "client_id": str(uuid.uuid4()), **fields}
    return await upload(http, f"{gw.url}/webchat/files", data, name, **fields)


async def test_a_customer_photo_reaches_the_record_the_socket_and_the_agent(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    try:
        await customer.say("a person please", "queue")
        await gateway.app[SERVICE].drain()
        cid = customer.conversation_id or ""
        assert (await sam.api("POST", f"/conversations/{cid}/claim"))[0] == 200

        status, body = await customer_upload(
            gateway, http, customer, PNG, "../cracked screen.svg", caption="It fell off the desk"
        )
        assert status == 200, body
        attachment = body["attachment"]
        assert attachment["kind"] == "image" and attachment["content_type"] == "image/png"
        assert attachment["name"] == "cracked screen.png", "path dropped, real extension"
        frame = await customer.wait_for(
            lambda f: f.get("type") == "message" and bool(f.get("attachment"))
        )
        assert frame["sender"] == "customer" and frame["text"] == "It fell off the desk"
        assert frame["attachment"]["url"] == attachment["url"]

        # The agent's view of the conversation has it, and the link serves the same bytes.
        status, view = await sam.api("GET", f"/conversations/{cid}")
        stored = [m for m in view["messages"] if m.get("attachment")]
        assert [m["attachment"]["file_id"] for m in stored] == [attachment["file_id"]]
        async with http.get(gateway.url + attachment["url"]) as resp:
            assert resp.status == 200
            assert await resp.read() == PNG
            assert resp.headers["Content-Type"] == "image/png"
            assert resp.headers["Content-Disposition"].startswith("inline;")
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert "sandbox" in resp.headers["Content-Security-Policy"]
    finally:
        await customer.close()
        await sam.close()


async def test_a_photo_while_the_bot_has_the_conversation_gets_a_notice(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.say("hello", "ok")
        status, body = await customer_upload(gateway, http, customer, PNG, "photo.png")
        assert status == 200, body
        notice = await customer.wait_for(
            lambda f: f.get("type") == "message" and "can't look at pictures" in f.get("text", "")
        )
        assert notice["sender"] == "system"
        messages = await gateway.app[STORE].messages(customer.conversation_id or "")
        kept = [m for m in messages if m.attachment is not None]
        assert len(kept) == 1 and kept[0].text == "" and kept[0].attachment is not None
        assert kept[0].attachment.file_id == body["attachment"]["file_id"]
    finally:
        await customer.close()


@pytest.mark.parametrize(
    ("data", "name", "status", "code"),
    [
        (SVG, "diagram.svg", 415, "unsupported_type"),
        (SVG, "innocent.png", 415, "unsupported_type"),
        (HTML, "notes.txt", 415, "unsupported_type"),
        (PNG + b"\x00" * 5000, "huge.png", 413, "too_large"),
        (b"", "empty.txt", 400, "empty"),
        (None, "", 400, "bad_request"),
    ],
)
async def test_bad_uploads_get_a_reason_and_store_nothing(
    gateway: Gateway,
    http: aiohttp.ClientSession,
    data: bytes | None,
    name: str,
    status: int,
    code: str,
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.say("hello", "ok")
        got, body = await customer_upload(gateway, http, customer, data, name)
        assert (got, body["error"]) == (status, code), body
        assert body["message"]
        messages = await gateway.app[STORE].messages(customer.conversation_id or "")
        assert [m.text for m in messages if m.sender_kind.value == "customer"] == ["hello"]
        assert stored_files(Path(gateway.settings.files.dir)) == []
    finally:
        await customer.close()


async def test_upload_needs_a_token_a_client_id_and_a_multipart_body(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/webchat/files"
    status, body = await upload(http, url, PNG, "p.png", token="forged.token", client_id="c1")
    assert (status, body["error"]) == (401, "invalid_token")
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        status, body = await upload(http, url, PNG, "p.png", token=customer.token or "")
        assert (status, body["error"]) == (400, "bad_request") and "client_id" in body["message"]
        async with http.post(url, json={"token": customer.token}) as resp:
            assert resp.status == 400
            assert "multipart/form-data" in (await resp.json())["message"]
        # The same client_id twice (a retry) is one message and one stored file.
        fields = {"token": customer.token or "", "client_id": "same-upload"}
        first = await upload(http, url, PNG, "p.png", **fields)
        second = await upload(http, url, PNG, "p.png", **fields)
        assert first[0] == second[0] == 200 and first[1]["seq"] == second[1]["seq"]
        assert first[1]["attachment"] == second[1]["attachment"]
        assert len(stored_files(Path(gateway.settings.files.dir))) == 1
        # A caption over the limit: refused before the file is kept.
        status, body = await upload(
            http, url, PNG, "p.png", token=customer.token or "", client_id="c2", caption="x" * 5000
        )
        assert (status, body["error"]) == (400, "too_long")
        assert len(stored_files(Path(gateway.settings.files.dir))) == 1
        # The file before the token: refused before its bytes are read.
        form = aiohttp.FormData()
        form.add_field("file", PNG, filename="p.png", content_type="image/png")
        form.add_field("token", customer.token or "")
        form.add_field("client_id", "c3")
        async with http.post(url, data=form) as resp:
            assert resp.status == 401
            assert "before the file" in (await resp.json())["message"]
        async with http.options(url) as resp:  # the widget runs on other sites
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        await customer.close()


async def test_agents_send_files_only_to_their_own_conversations(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        await customer.say("a person please", "queue")
        await gateway.app[SERVICE].drain()
        cid = customer.conversation_id or ""
        files_url = f"{gateway.url}/console/api/conversations/{cid}/files"

        async def agent_upload(agent: AgentClient, data: bytes, name: str, **f: str) -> Any:
            form = aiohttp.FormData()
            for key, value in f.items():
                form.add_field(key, value)
            form.add_field("file", data, filename=name, content_type="application/pdf")
            async with agent.http.post(
                files_url, data=form, headers={"X-CSRF-Token": agent.csrf}
            ) as resp:
                return resp.status, await resp.json()

        # Not claimed yet: nobody may send; nothing is stored.
        status, body = await agent_upload(sam, PDF, "guide.pdf")
        assert status == 409, body
        assert (await sam.api("POST", f"/conversations/{cid}/claim"))[0] == 200
        status, body = await agent_upload(kim, PDF, "guide.pdf")
        assert (status, body["message"]) == (409, "This conversation is assigned to another agent.")
        status, body = await agent_upload(sam, SVG, "guide.pdf")
        assert (status, body["error"]) == (415, "unsupported_type")
        async with sam.http.post(files_url, data=aiohttp.FormData({"a": "b"})) as resp:
            assert resp.status == 403, "no CSRF token, no upload"

        status, body = await agent_upload(sam, PDF, "Setup guide.pdf", caption="The guide")
        assert status == 200, body
        attachment = body["message"]["attachment"]
        assert (attachment["kind"], attachment["name"]) == ("file", "Setup guide.pdf")
        frame = await customer.wait_for(
            lambda f: f.get("type") == "message" and f.get("sender") == "agent"
        )
        assert frame["text"] == "The guide" and frame["attachment"]["url"] == attachment["url"]
        async with http.get(gateway.url + attachment["url"]) as resp:
            assert await resp.read() == PDF
            assert resp.headers["Content-Type"] == "application/pdf"
            assert resp.headers["Content-Disposition"] == (
                "attachment; filename*=UTF-8''Setup%20guide.pdf"
            )
        handoff = await gateway.app[STORE].current_handoff(cid)
        assert handoff is not None and handoff.first_agent_reply_at is not None
    finally:
        await customer.close()
        await sam.close()
        await kim.close()


async def test_unknown_files_are_404(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    for path in (f"/files/{uuid.uuid4().hex}/x.png", "/files/..%2F..%2Fetc/passwd", "/files/1/x"):
        async with http.get(gateway.url + path) as resp:
            assert resp.status == 404, path


async def test_a_bot_image_reaches_the_widget_as_an_image(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    customer = await CustomerClient(gateway.url, http).connect()
    try:
        await customer.send("cheer me up")
        frame = await customer.wait_for(
            lambda f: f.get("type") == "message" and bool(f.get("attachment"))
        )
        assert frame["sender"] == "bot" and frame["text"] == ""
        assert frame["attachment"] == {
            "kind": "image",
            "name": "cheer up.jpg",
            "content_type": "image/jpeg",
            "size": None,
            "file_id": None,
            "url": CAT,
        }
    finally:
        await customer.close()


async def test_an_unwritable_storage_is_a_503_and_nothing_is_stored(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A full or missing disk (here: a file where the storage directory should be)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("in the way")
    rasa = ScriptedRasa({})
    async with scripted_gateway(tmp_path, rasa, files={"dir": str(blocker)}) as gw:
        customer = await CustomerClient(gw.url, http).connect()
        try:
            await customer.say("hello", "ok")
            status, body = await customer_upload(gw, http, customer, PNG, "p.png")
            assert (status, body["error"]) == (503, "storage_unavailable")
            messages = await gw.app[STORE].messages(customer.conversation_id or "")
            assert [m.attachment for m in messages] == [None, None]
        finally:
            await customer.close()
