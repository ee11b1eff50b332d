"""Only the gateway talks to Rasa, and only Rasa talks to the action server (docs/security.md):
the real Rasa server and action server as `make run` starts them."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp
import pytest

from bot.rasa_client import GATEWAY_WEBHOOK, REST_WEBHOOK
from scripts import devctl

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("path", [GATEWAY_WEBHOOK, REST_WEBHOOK])
async def test_rasa_channels_refuse_a_request_without_the_token(
    rasa_stack: devctl.Stack, http: aiohttp.ClientSession, path: str
) -> None:
    sender = f"intruder-{uuid.uuid4()}"
    body = {"sender": sender, "message": "where is my order 1002"}
    for params in ({}, {"token": "guessed"}, {"token": rasa_stack.token + "x"}):
        async with http.post(f"{rasa_stack.rasa_url}{path}", json=body, params=params) as resp:
            assert resp.status == 401, (path, params)
    # Nothing reached the tracker of that conversation.
    async with http.get(
        f"{rasa_stack.rasa_url}/conversations/{sender}/tracker",
        params={"token": rasa_stack.token},
    ) as resp:
        assert (await resp.json()).get("latest_message", {}).get("text") in (None, "")
    async with http.post(
        f"{rasa_stack.rasa_url}{path}", json=body, params={"token": rasa_stack.token}
    ) as resp:
        assert resp.status == 200


async def test_the_action_server_answers_only_rasa(
    rasa_stack: devctl.Stack, http: aiohttp.ClientSession
) -> None:
    base = f"http://127.0.0.1:{rasa_stack.actions_port}"
    forged = {
        "next_action": "action_handle_order_request",
        "sender_id": "intruder",
        "tracker": {"sender_id": "intruder", "slots": {"order_number": "1002"}, "events": []},
        "domain": {},
        "version": "3.6.21",
    }
    for params in ({}, {"token": "guessed"}):
        async with http.post(f"{base}/webhook", json=forged, params=params) as resp:
            assert resp.status == 401
            assert "order" not in (await resp.text()).lower()
    async with http.get(f"{base}/actions", params={"token": devctl.action_server_token()}) as r:
        assert r.status == 200
        assert "action_handle_order_request" in {a["name"] for a in await r.json()}
    async with http.get(f"{base}/health") as resp:  # the readiness probe stays open
        assert resp.status == 200


async def test_the_backend_route_takes_only_the_gateways_key(
    rasa_stack: devctl.Stack, http: aiohttp.ClientSession
) -> None:
    """The console's customer profile reads the shop backend here, with a key of its own:
    without it nothing; Rasa's key (which runs actions) does not open it either."""
    url = f"http://127.0.0.1:{rasa_stack.actions_port}/backend/customers/1"
    for params in ({}, {"token": "guessed"}, {"token": devctl.action_server_token()}):
        async with http.get(url, params=params) as resp:
            assert resp.status == 401, params
            assert "Maya" not in await resp.text()
    async with http.get(url, params={"token": devctl.backend_token()}) as resp:
        assert resp.status == 200
        assert (await resp.json())["customer"]["name"] == "Maya Patel"
    async with http.get(
        f"http://127.0.0.1:{rasa_stack.actions_port}/backend/customers/424242",
        params={"token": devctl.backend_token()},
    ) as resp:
        assert resp.status == 404
    # The gateway's key runs no action.
    async with http.get(
        f"http://127.0.0.1:{rasa_stack.actions_port}/actions",
        params={"token": devctl.backend_token()},
    ) as resp:
        assert resp.status == 401


def test_the_action_server_listens_on_loopback_only(rasa_stack: devctl.Stack) -> None:
    port_hex = f"{rasa_stack.actions_port:04X}"
    listening = [
        line.split()[1]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[1].endswith(f":{port_hex}") and line.split()[3] == "0A"  # LISTEN
    ]
    assert listening == [f"0100007F:{port_hex}"], listening  # 127.0.0.1 and nothing else
