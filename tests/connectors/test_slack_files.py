"""Pictures and files on Slack, both ways: the real gateway, real slack-bolt and slack_sdk, signed
events in, and the fake Slack (tests/fakes/slack_api.py), which hosts the customers' files
behind the bot token and takes uploads the way files_upload_v2 makes them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.appkeys import DESK, ENGINE, SERVICE, STORE
from bot.config import Settings
from bot.core.errors import DeliveryError
from bot.core.types import (
    ATTACHMENT_PAYLOAD,
    UNSUPPORTED_PAYLOAD,
    Attachment,
    Direction,
    SenderKind,
    StoredMessage,
)
from bot.pipeline.bot_turn import NOTICES
from tests.connectors.test_slack import (
    SIGNING_SECRET,
    TECH_PROBLEM,
    all_conversations,
    connector,
    customer_messages,
    only_conversation,
    slack_channels,
)
from tests.fakes.rasa import ScriptedRasa
from tests.fakes.slack_api import CUSTOMER_DM, FakeSlackApi, SlackSender
from tests.gateway_fixtures import (
    AGENT_PASSWORD,
    Gateway,
    gateway_settings,
    running_gateway,
    scripted_gateway,
)
from tests.helpers import AgentClient, dead_port, png_bytes, served, stored_files

PNG = png_bytes()
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
CAT = "https://images.example.test/cheer%20up.jpg"


@pytest.fixture
async def slack_api() -> AsyncIterator[FakeSlackApi]:
    async with FakeSlackApi() as fake:
        yield fake


def settings_for(tmp_path: Path, slack_api: FakeSlackApi, **files: Any) -> Settings:
    return gateway_settings(
        tmp_path,
        f"http://127.0.0.1:{dead_port()}",
        None,
        files={"dir": str(tmp_path / "files"), **files},
        channels=slack_channels(slack_api),
    )


@pytest.fixture
async def gateway(tmp_path: Path, slack_api: FakeSlackApi) -> AsyncIterator[Gateway]:
    async with running_gateway(settings_for(tmp_path, slack_api)) as gw:
        yield gw


@pytest.fixture
async def small_gateway(tmp_path: Path, slack_api: FakeSlackApi) -> AsyncIterator[Gateway]:
    """Files up to 2 KB."""
    async with running_gateway(settings_for(tmp_path, slack_api, max_bytes=2048)) as gw:
        yield gw


def with_files(event: dict[str, Any], *files: dict[str, Any]) -> dict[str, Any]:
    """A message event as Slack sends it when the customer shares files (with its text)."""
    event["event"] |= {"subtype": "file_share", "files": list(files), "upload": True}
    return event


async def test_a_shared_picture_is_downloaded_with_the_token_and_stored(
    gateway: Gateway, slack_api: FakeSlackApi, http: aiohttp.ClientSession
) -> None:
    slack = SlackSender(gateway.url, SIGNING_SECRET, http)
    event = with_files(
        slack.dm_event("the box arrived like this"),
        slack_api.host_file("box.png", PNG, "image/png"),
    )

    assert (await slack.send_event(event)).status == 200

    store = gateway.app[STORE]
    conversation = await only_conversation(store)
    assert conversation.channel_user_id == CUSTOMER_DM
    (stored,) = await customer_messages(store, conversation.id)  # stored before the 200
    assert stored.text == "the box arrived like this"
    assert stored.channel_message_id == f"{event['event_id']}:0"
    assert stored.attachment is not None
    assert (stored.attachment.kind, stored.attachment.name) == ("image", "box.png")
    assert (stored.attachment.content_type, stored.attachment.size) == ("image/png", len(PNG))
    assert await served(gateway.url, http, stored.attachment) == PNG
    (download,) = slack_api.calls_to("download")
    assert download.status == 200 and download.token == slack_api.token
    await slack_api.wait_for_post(lambda c: TECH_PROBLEM in c.params["text"])  # the words: bot

    # Slack's retry of the event: stored once, not downloaded again.
    assert (await slack.send_event(event, retry_num=1)).status == 200
    assert len(await customer_messages(store, conversation.id)) == 1
    assert len(slack_api.calls_to("download")) == 1


async def test_each_file_is_a_message_and_a_refused_one_gets_the_reason(
    gateway: Gateway, slack_api: FakeSlackApi, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    slack = SlackSender(gateway.url, SIGNING_SECRET, http)
    event = with_files(
        slack.dm_event(""),
        slack_api.host_file("logo.svg", SVG, "image/svg+xml"),
        slack_api.host_file("invoice.pdf", PDF, "application/pdf"),
    )

    assert (await slack.send_event(event)).status == 200

    reason = await slack_api.wait_for_post(lambda c: "logo.svg" in c.params["text"])
    assert "a web page or script can't be sent here" in reason.params["text"]
    assert reason.params["channel"] == CUSTOMER_DM
    store = gateway.app[STORE]
    (stored,) = await customer_messages(store, (await only_conversation(store)).id)
    assert stored.channel_message_id == f"{event['event_id']}:1"
    assert (stored.text, stored.payload) == ("", ATTACHMENT_PAYLOAD)
    assert stored.attachment is not None and stored.attachment.name == "invoice.pdf"
    assert await served(gateway.url, http, stored.attachment) == PDF
    assert len(stored_files(tmp_path / "files")) == 1  # the PDF only
    await slack_api.wait_for_post(lambda c: NOTICES[ATTACHMENT_PAYLOAD][:40] in c.params["text"])


@pytest.mark.parametrize("size_known", [True, False], ids=["size_known", "size_unknown"])
async def test_a_file_over_the_limit_is_refused_in_its_thread_and_nothing_stored(
    small_gateway: Gateway,
    slack_api: FakeSlackApi,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    size_known: bool,
) -> None:
    slack = SlackSender(small_gateway.url, SIGNING_SECRET, http)
    file = slack_api.host_file("manual.pdf", PDF + b"x" * 5000, "application/pdf")
    if not size_known:
        del file["size"]  # found out while downloading
    mention = with_files(slack.mention_event("here is the manual"), file)
    del mention["event"]["subtype"]  # an app_mention has none

    assert (await slack.send_event(mention)).status == 200

    expected = "The limit for a file is 2 KB and this one is " + (
        "5 KB" if size_known else "larger than that"
    )
    reason = await slack_api.wait_for_post(lambda c: expected in c.params["text"])
    root = mention["event"]["ts"]
    assert (reason.params["channel"], reason.params["thread_ts"]) == ("C0SUPPORT", root)
    assert len(slack_api.calls_to("download")) == (0 if size_known else 1)
    assert stored_files(tmp_path / "files") == []
    # The words still reach the bot, in the mention's thread.
    store = small_gateway.app[STORE]
    (stored,) = await customer_messages(store, (await only_conversation(store)).id)
    assert (stored.text, stored.attachment) == ("here is the manual", None)


@pytest.mark.parametrize("failure", ["server_error", "no_files_read_scope"])
async def test_a_file_that_cannot_be_downloaded_leaves_a_placeholder(
    gateway: Gateway,
    slack_api: FakeSlackApi,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    failure: str,
) -> None:
    if failure == "server_error":
        slack_api.fail("download", "internal_error")
    else:
        slack_api.files_read = False  # Slack answers with its sign-in page
    slack = SlackSender(gateway.url, SIGNING_SECRET, http)
    event = with_files(slack.dm_event("my invoice"), slack_api.host_file("invoice.pdf", PDF))

    assert (await slack.send_event(event)).status == 200

    store = gateway.app[STORE]
    (stored,) = await customer_messages(store, (await only_conversation(store)).id)
    assert stored.text == "[file invoice.pdf that could not be downloaded] my invoice"
    assert (stored.payload, stored.attachment) == (UNSUPPORTED_PAYLOAD, None)
    assert stored_files(tmp_path / "files") == []  # not even the sign-in page
    await slack_api.wait_for_post(lambda c: c.params["text"] == NOTICES[UNSUPPORTED_PAYLOAD])


async def test_a_slow_download_is_acknowledged_in_time_and_stored_once(
    gateway: Gateway, slack_api: FakeSlackApi, http: aiohttp.ClientSession
) -> None:
    slack_api.delays["download"] = 2.5  # longer than the ack may wait
    slack = SlackSender(gateway.url, SIGNING_SECRET, http)
    event = with_files(slack.dm_event(""), slack_api.host_file("box.png", PNG, "image/png"))

    first = await slack.send_event(event)
    retry = await slack.send_event(event, retry_num=1)  # Slack gave up waiting, as it might

    assert first.status == retry.status == 200
    assert first.elapsed_ms < 2500
    store = gateway.app[STORE]
    for _ in range(50):
        if await all_conversations(store):
            break
        await asyncio.sleep(0.1)
    (stored,) = await customer_messages(store, (await only_conversation(store)).id)
    assert stored.attachment is not None
    assert len(slack_api.calls_to("download")) == 1  # the retry joined the first download


async def test_an_agents_file_is_uploaded_with_the_exact_bytes(
    gateway: Gateway, slack_api: FakeSlackApi, http: aiohttp.ClientSession
) -> None:
    store = gateway.app[STORE]
    customer = await store.find_or_create_customer("slack", CUSTOMER_DM)
    conversation = await store.open_conversation(customer.id, "slack", CUSTOMER_DM)
    sam = await store.agent_by_username("sam")
    assert sam is not None
    await gateway.app[DESK].take_over(conversation.id, sam)
    agent = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)
    try:
        form = aiohttp.FormData()
        form.add_field("caption", "The label <for> your return")
        form.add_field("file", PDF, filename="label.pdf", content_type="application/pdf")
        async with agent.http.post(
            f"{gateway.url}/console/api/conversations/{conversation.id}/files",
            data=form,
            headers={"X-CSRF-Token": agent.csrf},
        ) as resp:
            assert resp.status == 200, await resp.text()
    finally:
        await agent.close()

    complete = await slack_api.wait_for(lambda c: c.method == "files.completeUploadExternal")
    assert complete.ok
    (url_call,) = slack_api.calls_to("files.getUploadURLExternal")
    assert (url_call.params["filename"], url_call.params["length"]) == ("label.pdf", str(len(PDF)))
    (upload,) = slack_api.calls_to("upload")
    assert upload.at < complete.at
    (shared,) = slack_api.shared
    assert (shared.data, shared.filename, shared.channel) == (PDF, "label.pdf", CUSTOMER_DM)
    assert shared.initial_comment == "*Sam:* The label &lt;for&gt; your return"
    assert shared.thread_ts is None
    # The caption went with the file, not as a message of its own.
    assert not [p for p in slack_api.posts() if "label" in p.params["text"]]


async def test_an_agents_picture_goes_into_the_mention_thread(
    gateway: Gateway, slack_api: FakeSlackApi
) -> None:
    thread = "C0SUPPORT:1700000500.000100"
    store, desk = gateway.app[STORE], gateway.app[DESK]
    customer = await store.find_or_create_customer("slack", thread)
    conversation = await store.open_conversation(customer.id, "slack", thread)
    sam = await store.agent_by_username("sam")
    assert sam is not None
    await desk.take_over(conversation.id, sam)

    await desk.agent_file(conversation.id, sam, PNG, "damage.png")

    await slack_api.wait_for(lambda c: c.method == "files.completeUploadExternal")
    (shared,) = slack_api.shared
    assert (shared.data, shared.channel, shared.thread_ts) == (
        PNG,
        "C0SUPPORT",
        "1700000500.000100",
    )
    assert shared.initial_comment == "*Sam:*"


async def test_a_bot_image_reaches_slack_as_an_image_block(
    tmp_path: Path, slack_api: FakeSlackApi, http: aiohttp.ClientSession
) -> None:
    rasa = ScriptedRasa({}, images={"cheer me up": CAT})
    async with scripted_gateway(tmp_path, rasa, channels=slack_channels(slack_api)) as gw:
        slack = SlackSender(gw.url, SIGNING_SECRET, http)
        assert (await slack.dm("cheer me up")).status == 200
        post = await slack_api.wait_for_post(lambda c: "blocks" in c.params)
        assert post.params["blocks"] == [
            {"type": "image", "image_url": CAT, "alt_text": "cheer up.jpg"}
        ]
        assert post.params["text"] == "cheer up.jpg"  # the notification's fallback
        assert post.params["channel"] == CUSTOMER_DM
        assert [p.params["text"] for p in slack_api.posts()] == ["ok", "cheer up.jpg"]
        await gw.app[SERVICE].drain()


async def test_deliver_falls_back_to_a_link_and_maps_upload_errors(
    gateway: Gateway, slack_api: FakeSlackApi
) -> None:
    store, slack_connector = gateway.app[STORE], connector(gateway)
    customer = await store.find_or_create_customer("slack", CUSTOMER_DM)
    conversation = await store.open_conversation(customer.id, "slack", CUSTOMER_DM)
    image = Attachment("image", "cheer up.jpg", "image/jpeg", url=CAT)

    def message(attachment: Attachment, text: str = "") -> StoredMessage:
        return StoredMessage(
            id=0,
            conversation_id=conversation.id,
            seq=99,
            direction=Direction.OUTBOUND,
            sender_kind=SenderKind.BOT,
            text=text,
            created_at=conversation.created_at,
            attachment=attachment,
        )

    # Slack could not fetch the picture (invalid_blocks): the link instead.
    slack_api.fail("chat.postMessage", "invalid_blocks")
    await slack_connector.deliver(conversation, message(image, "Here you go"))
    refused, post = slack_api.calls_to("chat.postMessage")
    assert not refused.ok and refused.params["blocks"][1]["type"] == "image"
    assert post.ok and post.params["text"] == f"Here you go\n<{CAT}|cheer up.jpg>"
    assert "blocks" not in post.params

    saved = await gateway.app[ENGINE].files.save(PNG, "chart.png", "agent")
    slack_api.fail("files.getUploadURLExternal", "ratelimited", retry_after=6)
    with pytest.raises(DeliveryError) as limited:
        await slack_connector.deliver(conversation, message(saved))
    assert limited.value.retry_after == 6.0 and not limited.value.permanent
    assert "files.getUploadURLExternal" in str(limited.value)
    slack_api.fail("files.completeUploadExternal", "channel_not_found")
    with pytest.raises(DeliveryError) as gone:
        await slack_connector.deliver(conversation, message(saved))
    assert gone.value.permanent
    slack_api.fail("files.completeUploadExternal", "internal_error")
    with pytest.raises(DeliveryError) as flaky:
        await slack_connector.deliver(conversation, message(saved))
    assert not flaky.value.permanent
    assert slack_api.shared == []
    await slack_connector.deliver(conversation, message(saved, "Your chart"))
    (shared,) = slack_api.shared
    assert (shared.data, shared.initial_comment) == (PNG, "Your chart")
