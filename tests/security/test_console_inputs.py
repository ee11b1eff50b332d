"""Console API input that used to end in a 500: JSON nested 20,000 deep, an agent id past SQL's
integers; and the detailed health report that only supervisors may read."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.appkeys import STORE
from tests.gateway_fixtures import AGENT_PASSWORD, Gateway, gateway_settings, running_gateway
from tests.helpers import AgentClient, dead_port

DEEP = "[" * 20_000 + "]" * 20_000


async def test_deep_json_and_huge_ids_get_a_400(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    try:
        for path in ("/conversations/c1/notes", "/conversations/c1/reply"):
            async with kim.http.post(
                f"{gateway.url}/console/api{path}",
                data=DEEP,
                headers={"X-CSRF-Token": kim.csrf, "Content-Type": "application/json"},
            ) as resp:
                assert resp.status == 400, path
                assert (await resp.json())["error"] == "bad_json"
        for agent_id in (10**30, -1, 0, 2**31):
            status, body = await kim.api(
                "POST", "/conversations/c1/transfer", {"agent_id": agent_id}
            )
            assert (status, body["error"]) == (400, "unknown_agent"), agent_id
    finally:
        await kim.close()
    assert not [r for r in caplog.records if r.exc_info]


async def test_only_supervisors_read_the_detailed_health(gateway: Gateway) -> None:
    kim = await AgentClient(gateway.url).login("kim", AGENT_PASSWORD)
    sam = await AgentClient(gateway.url).login("sam", AGENT_PASSWORD)  # the demo supervisor
    try:
        status, body = await kim.api("GET", "/health")
        assert (status, body["error"]) == (403, "forbidden")
        status, body = await sam.api("GET", "/health")
        assert status == 200
        assert body["status"] == "ok" and body["broker"] is True
        assert body["channels"]["webchat"] == "on"
        assert "TELEGRAM_BOT_TOKEN" in body["channels"]["telegram"]
    finally:
        await kim.close()
        await sam.close()


async def test_no_account_has_a_known_password(tmp_path: Path) -> None:
    """Without DEMO_AGENT_PASSWORD (gateway.yml's default) there is no demo agent at all, so
    `demo` / `demo-password` opens nothing."""
    settings = gateway_settings(
        tmp_path,
        f"http://127.0.0.1:{dead_port()}",
        None,
        demo_agent={"username": "demo", "password": "", "display_name": "Sam"},
    )
    async with running_gateway(settings) as gw:
        assert await gw.app[STORE].agents() == []
        client = AgentClient(gw.url)
        try:
            with pytest.raises(AssertionError, match="login failed: 401"):
                await client.login("demo", "demo-password")
        finally:
            await client.close()
