"""Pictures and files on Telegram, both ways: the real gateway and real python-telegram-bot code
against the fake Bot API (tests/fakes/telegram_api.py), which serves getFile and the file
downloads and records sendPhoto / sendDocument with the uploaded bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.appkeys import DESK, ENGINE, SERVICE, STORE
from bot.config import Settings
from bot.core.errors import DeliveryError
from bot.core.models import Conversation
from bot.core.types import (
    ATTACHMENT_PAYLOAD,
    UNSUPPORTED_PAYLOAD,
    Attachment,
    Button,
    Direction,
    SenderKind,
    StoredMessage,
)
from bot.pipeline.bot_turn import NOTICES
from tests.connectors.test_telegram import (
    CHAT,
    PUBLIC_URL,
    SECRET,
    TECH_PROBLEM,
    connector,
    conversation_of,
    customer_messages,
    quiet_period,
)
from tests.fakes.rasa import ScriptedRasa
from tests.fakes.telegram_api import TOKEN, FakeTelegramApi, UploadedFile, load_update
from tests.gateway_fixtures import Gateway, gateway_settings, running_gateway, scripted_gateway
from tests.helpers import dead_port, png_bytes, served, stored_files

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
PNG = png_bytes()
CAT = "https://images.example.test/cheer%20up.jpg"
# The file ids in tests/fakes/data/telegram_photo.json (smallest size first) and _document.json.
PHOTO_SMALL, PHOTO_LARGE = "AgACAgQAAxkBAAIBZGZphoto0001s", "AgACAgQAAxkBAAIBZGZphoto0001x"
DOCUMENT = "BQACAgQAAxkBAAIBZmZdocument0001"


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramApi]:
    async with FakeTelegramApi() as fake:
        yield fake


def settings_for(tmp_path: Path, api: FakeTelegramApi, **files: Any) -> Settings:
    return gateway_settings(
        tmp_path,
        f"http://127.0.0.1:{dead_port()}",
        None,
        files={"dir": str(tmp_path / "files"), **files},
        channels={
            "telegram": {
                "token": TOKEN,
                "api_base_url": api.url,
                "public_url": PUBLIC_URL,
                "secret_token": SECRET,
            }
        },
    )


@pytest.fixture
async def gateway(tmp_path: Path, api: FakeTelegramApi) -> AsyncIterator[Gateway]:
    async with running_gateway(settings_for(tmp_path, api)) as gw:
        yield gw


@pytest.fixture
async def small_gateway(tmp_path: Path, api: FakeTelegramApi) -> AsyncIterator[Gateway]:
    """Files up to 2 KB."""
    async with running_gateway(settings_for(tmp_path, api, max_bytes=2048)) as gw:
        yield gw


def document_update(api: FakeTelegramApi, name: str, data: bytes, **document: Any) -> Any:
    update = load_update("document", update_id=api.next_update_id())
    update["message"]["document"] |= {"file_name": name, "file_size": len(data), **document}
    api.add_file(update["message"]["document"]["file_id"], data, f"documents/{name}")
    return update


async def test_a_photo_is_downloaded_and_stored_with_its_caption(
    gateway: Gateway, api: FakeTelegramApi, http: aiohttp.ClientSession
) -> None:
    api.add_file(PHOTO_LARGE, JPEG, "photos/file_7.jpg")
    update = load_update("photo", update_id=api.next_update_id())

    status, body, _ = await api.post_to_webhook(gateway.url, update)

    assert (status, body) == (200, {"ok": True})
    (stored,) = await customer_messages(gateway, CHAT)  # stored before the 200
    assert stored.text == "the box arrived like this" and stored.payload is None
    assert stored.attachment is not None
    assert (stored.attachment.kind, stored.attachment.name) == ("image", "photo.jpg")
    assert (stored.attachment.content_type, stored.attachment.size) == ("image/jpeg", len(JPEG))
    assert await served(gateway.url, http, stored.attachment) == JPEG
    # The largest size, fetched through getFile and the file path it named.
    assert [c.params["file_id"] for c in api.calls_to("getFile")] == [PHOTO_LARGE]
    (download,) = api.calls_to("downloadFile")
    assert download.ok and download.params["file_path"] == "photos/file_7.jpg"
    # The caption went to the bot (down in these tests, hence the apology).
    await api.wait_for_text(CHAT, TECH_PROBLEM)

    # Telegram sends the update again: stored once.
    status, _, _ = await api.post_to_webhook(gateway.url, update)
    assert status == 200
    await quiet_period(gateway)
    assert len(await customer_messages(gateway, CHAT)) == 1


async def test_a_document_without_caption_is_kept_and_answered_with_the_notice(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    update = document_update(api, "invoice-1001.pdf", PDF)

    status, _, _ = await api.post_to_webhook(gateway.url, update)

    assert status == 200
    (stored,) = await customer_messages(gateway, CHAT)
    assert (stored.text, stored.payload) == ("", ATTACHMENT_PAYLOAD)
    assert stored.attachment is not None and stored.attachment.file_id is not None
    assert (stored.attachment.kind, stored.attachment.name) == ("file", "invoice-1001.pdf")
    record, data = await gateway.app[ENGINE].files.read(stored.attachment.file_id)
    assert data == PDF and record.uploaded_by == "customer"
    await api.wait_for_text(CHAT, NOTICES[ATTACHMENT_PAYLOAD][:40])
    await quiet_period(gateway)
    assert not [t for t in api.sent_texts(CHAT) if TECH_PROBLEM in t]  # never sent to the bot


async def test_a_script_disguised_as_a_document_is_refused_with_the_reason(
    gateway: Gateway, api: FakeTelegramApi, tmp_path: Path
) -> None:
    update = document_update(api, "logo.svg", SVG, mime_type="image/svg+xml")

    status, _, _ = await api.post_to_webhook(gateway.url, update)

    assert status == 200  # handled: resending would not change the file
    reply = await api.wait_for_text(CHAT, "a web page or script can't be sent here")
    assert "Accepted: " in reply.params["text"] and "PDF" in reply.params["text"]
    await quiet_period(gateway)
    assert await customer_messages(gateway, CHAT) == []
    assert stored_files(tmp_path / "files") == []


@pytest.mark.parametrize("size_in_update", [True, False], ids=["size_known", "size_unknown"])
async def test_a_document_over_the_limit_is_refused_without_downloading_it(
    small_gateway: Gateway, api: FakeTelegramApi, tmp_path: Path, size_in_update: bool
) -> None:
    update = document_update(api, "manual.pdf", PDF + b"x" * 5000)
    if not size_in_update:
        del update["message"]["document"]["file_size"]  # then getFile tells

    status, _, _ = await api.post_to_webhook(small_gateway.url, update)

    assert status == 200
    await api.wait_for_text(CHAT, "The limit for a file is 2 KB and this one is 5 KB")
    assert bool(api.calls_to("getFile")) is not size_in_update
    assert not api.calls_to("downloadFile")
    await quiet_period(small_gateway)
    assert await customer_messages(small_gateway, CHAT) == []
    assert stored_files(tmp_path / "files") == []


async def test_a_photo_comes_in_the_largest_size_that_fits_the_limit(
    small_gateway: Gateway, api: FakeTelegramApi, http: aiohttp.ClientSession
) -> None:
    small = JPEG[:1290]  # the size the update lists for the smallest photo
    api.add_file(PHOTO_SMALL, small, "photos/file_7_s.jpg")
    api.add_file(PHOTO_LARGE, JPEG * 40, "photos/file_7.jpg")

    status, _, _ = await api.post_to_webhook(
        small_gateway.url, load_update("photo", update_id=api.next_update_id())
    )

    assert status == 200
    (stored,) = await customer_messages(small_gateway, CHAT)
    assert stored.attachment is not None
    assert await served(small_gateway.url, http, stored.attachment) == small
    assert [c.params["file_id"] for c in api.calls_to("getFile")] == [PHOTO_SMALL]


async def test_a_failed_download_keeps_a_placeholder_for_the_agents(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    update = document_update(api, "invoice-1001.pdf", PDF)
    update["message"]["caption"] = "my invoice"
    api.fail_next("downloadFile", 502, "Bad Gateway")

    status, _, _ = await api.post_to_webhook(gateway.url, update)

    assert status == 200
    (stored,) = await customer_messages(gateway, CHAT)
    assert stored.text == "[document invoice-1001.pdf that could not be downloaded] my invoice"
    assert (stored.payload, stored.attachment) == (UNSUPPORTED_PAYLOAD, None)
    await api.wait_for_text(CHAT, NOTICES[UNSUPPORTED_PAYLOAD])


async def assigned_to_sam(gw: Gateway, api: FakeTelegramApi) -> str:
    """A Telegram conversation that the agent Sam has taken over; its id."""
    await api.post_to_webhook(gw.url, load_update("text", update_id=api.next_update_id()))
    await quiet_period(gw, 0.2)
    conversation = await conversation_of(gw.app[STORE], CHAT)
    sam = await gw.app[STORE].agent_by_username("sam")
    assert conversation is not None and sam is not None
    await gw.app[DESK].take_over(conversation.id, sam)
    return conversation.id


async def test_an_agents_picture_and_file_reach_telegram_with_the_exact_bytes(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    cid = await assigned_to_sam(gateway, api)
    sam = await gateway.app[STORE].agent_by_username("sam")
    assert sam is not None
    desk = gateway.app[DESK]

    await desk.agent_file(cid, sam, PNG, "damage.png", "Is this the part?")
    photo = await api.wait_for(lambda c: c.method == "sendPhoto")
    assert photo.ok and photo.params["chat_id"] == CHAT
    assert photo.params["photo"] == UploadedFile("damage.png", "image/png", PNG)
    assert photo.params["caption"] == "Sam: Is this the part?"

    await desk.agent_file(cid, sam, PDF, "label.pdf")
    document = await api.wait_for(lambda c: c.method == "sendDocument")
    assert document.ok and document.params["document"].data == PDF
    assert document.params["document"].filename == "label.pdf"
    assert document.params["caption"] == "Sam:"

    # A caption over Telegram's 1,024 characters goes first, as its own message.
    long = "Please check this: " + "x" * 1100
    mark = len(api.calls)
    await desk.agent_file(cid, sam, PNG, "second.png", long)
    photo = await api.wait_for(lambda c: c.method == "sendPhoto", after=mark)
    assert "caption" not in photo.params and photo.params["photo"].data == PNG
    texts = [c for c in api.calls[mark:] if c.method == "sendMessage"]
    assert [c.params["text"] for c in texts] == [f"Sam: {long}"]
    assert texts[0].at < photo.at


async def test_a_bot_image_reaches_telegram_as_a_photo_by_its_address(
    tmp_path: Path, api: FakeTelegramApi
) -> None:
    rasa = ScriptedRasa({}, images={"cheer me up": CAT})
    channels = {"telegram": {"token": TOKEN, "api_base_url": api.url}}  # polling
    async with scripted_gateway(tmp_path, rasa, channels=channels) as gw:
        await api.queue_update(
            load_update("text", update_id=api.next_update_id(), text="cheer me up")
        )
        photo = await api.wait_for(lambda c: c.method == "sendPhoto")
        assert photo.ok and photo.params["chat_id"] == CHAT
        assert photo.params["photo"] == CAT and "caption" not in photo.params
        assert api.sent_texts(CHAT) == ["ok"]  # the text answer before it
        await gw.app[SERVICE].drain()


def outbound(conversation: Conversation, attachment: Attachment, text: str = "") -> StoredMessage:
    return StoredMessage(
        id=0,
        conversation_id=conversation.id,
        seq=99,
        direction=Direction.OUTBOUND,
        sender_kind=SenderKind.BOT,
        text=text,
        created_at=conversation.created_at,
        buttons=[Button("Yes", "/affirm"), Button("No", "/deny")],
        attachment=attachment,
    )


async def test_deliver_falls_back_and_maps_telegram_errors_for_pictures(
    gateway: Gateway, api: FakeTelegramApi
) -> None:
    store, tg = gateway.app[STORE], connector(gateway)
    customer = await store.find_or_create_customer("telegram", str(CHAT), None)
    conversation = await store.open_conversation(customer.id, "telegram", str(CHAT))
    by_url = Attachment("image", "cheer up.jpg", "image/jpeg", url=CAT)
    saved = await gateway.app[ENGINE].files.save(PNG, "chart.png", "agent")

    # Telegram could not fetch the address: the link goes as text, buttons and all.
    api.fail_next("sendPhoto", 400, "Bad Request: failed to get HTTP URL content")
    await tg.deliver(conversation, outbound(conversation, by_url, "Here you go"))
    link = api.calls_to("sendMessage", chat_id=CHAT)[-1]
    assert link.params["text"] == f"Here you go\n{CAT}"
    assert link.button_titles() == ["Yes", "No"]

    # Telegram refused the picture as a photo: it goes as a document.
    api.fail_next("sendPhoto", 400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
    await tg.deliver(conversation, outbound(conversation, saved, "The chart"))
    document = api.calls_to("sendDocument")[-1]
    assert document.ok and document.params["document"].data == PNG
    assert (document.params["caption"], document.button_titles()) == ("The chart", ["Yes", "No"])

    api.fail_next("sendPhoto", 429, retry_after=4)
    with pytest.raises(DeliveryError) as limited:
        await tg.deliver(conversation, outbound(conversation, saved))
    assert limited.value.retry_after == 4.0 and not limited.value.permanent
    api.fail_next("sendPhoto", 403)  # blocked by the customer
    with pytest.raises(DeliveryError) as blocked:
        await tg.deliver(conversation, outbound(conversation, by_url))
    assert blocked.value.permanent
    missing = Attachment("file", "gone.pdf", "application/pdf", 10, file_id="0" * 32)
    with pytest.raises(DeliveryError) as gone:
        await tg.deliver(conversation, outbound(conversation, missing))
    assert gone.value.permanent
