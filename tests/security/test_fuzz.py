"""Property-based fuzzing of the public and console HTTP/websocket APIs (hypothesis, a bounded
number of examples per run): whatever JSON arrives, the answer is an error frame or a 4xx,
never a 500, a closed socket or a traceback. A real gateway app; Rasa is a closed port."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.appkeys import STORE
from handoff.auth import hash_password
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway
from tests.helpers import AgentClient, CustomerClient, dead_port

# Any text, lone surrogates and control characters included.
TEXT = st.text(st.characters(codec=None, categories=None), max_size=40)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
FRAME = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "sync", "ping", "other"]) | TEXT},
    optional={"client_id": JSON | TEXT, "text": JSON | TEXT, "payload": JSON, "after_seq": JSON},
)
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    # Hundreds of sessions and frames from one address: past the abuse limits on purpose.
    many = {"sessions_per_minute_per_address": 10**6, "messages_per_minute_per_conversation": 10**6}
    settings = gateway_settings(tmp, f"http://127.0.0.1:{dead_port()}", None, limits=many)
    async with running_gateway(settings) as gw:
        await gw.app[STORE].add_agent("kim", "Kim", hash_password(AGENT_PASSWORD))
        yield gw


@pytest.fixture(scope="module")
async def customer(gateway: Gateway) -> AsyncIterator[CustomerClient]:
    async with aiohttp.ClientSession() as http:
        client = await CustomerClient(gateway.url, http).connect()
        yield client
        await client.close()


@pytest.fixture(scope="module")
async def kim(gateway: Gateway) -> AsyncIterator[AgentClient]:
    client = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    yield client
    await client.close()


@FUZZ
@given(frame=FRAME | JSON)
async def test_fuzzed_widget_frames_never_close_the_socket(
    customer: CustomerClient, frame: Any
) -> None:
    assert customer.ws is not None and not customer.ws.closed
    mark = len(customer.frames)
    await customer.ws.send_str(json.dumps(frame))
    await customer.ws.send_json({"type": "ping"})
    await customer.wait_for(lambda f: f.get("type") == "pong", timeout=10, after=mark)
    seen = customer.frames[mark:]
    assert not [f for f in seen if f.get("type") == "error" and f.get("code") == "internal"], seen


@FUZZ
@given(body=JSON)
async def test_fuzzed_session_bodies_get_an_answer_not_a_500(gateway: Gateway, body: Any) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gateway.url}/webchat/session",
            data=json.dumps(body),
            headers={"Content-Type": "application/json"},
        ) as resp,
    ):
        assert resp.status in (200, 400, 401), (resp.status, await resp.text())


@FUZZ
@given(
    action=st.sampled_from(["notes", "reply", "transfer", "claim", "resolve"]),
    conversation=st.sampled_from(["c1", "x" * 300, "%2e%2e", "0"])
    | TEXT.filter(lambda s: "/" not in s),
    body=JSON,
)
async def test_fuzzed_console_calls_get_a_4xx_not_a_500(
    kim: AgentClient, action: str, conversation: str, body: Any
) -> None:
    async with kim.http.post(
        f"{kim.base_url}/console/api/conversations/{conversation}/{action}",
        data=json.dumps(body),
        headers={"X-CSRF-Token": kim.csrf, "Content-Type": "application/json"},
    ) as resp:
        assert 400 <= resp.status < 500, (resp.status, await resp.text())
