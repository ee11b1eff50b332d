"""Sign-in throttling per address and per address + username, in memory and on the real Redis
(shared by replicas), failing open when Redis is gone."""

from __future__ import annotations

import logging
import os
import uuid

import pytest

from handoff.throttle import LoginThrottle
from tests.helpers import dead_port

REDIS_URL = os.environ.get("CSBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _address() -> str:
    """A fresh address per test, so runs on the shared Redis never meet."""
    return f"192.0.2.{uuid.uuid4().hex}"


@pytest.fixture(params=["memory", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "memory" else REDIS_URL


async def test_five_failures_block_that_account_from_that_address_only(
    redis_url: str | None,
) -> None:
    throttle, here, there = LoginThrottle(redis_url), _address(), _address()
    for _ in range(4):
        await throttle.record_failure(here, "amy")
        assert await throttle.retry_after(here, "amy") == 0
    await throttle.record_failure(here, "amy")
    assert 0 < await throttle.retry_after(here, " AMY ") <= 60  # however it is typed
    assert await throttle.retry_after(there, "amy") == 0  # the real Amy, elsewhere
    assert await throttle.retry_after(here, "bob") == 0
    await throttle.reset(here, "amy")
    assert await throttle.retry_after(here, "amy") == 0


async def test_many_usernames_from_one_address_are_throttled(redis_url: str | None) -> None:
    throttle, here = LoginThrottle(redis_url), _address()
    for n in range(20):  # one guess each for 20 accounts: no account limit is reached
        await throttle.record_failure(here, f"user{n}")
    assert await throttle.retry_after(here, "user99") > 0
    assert await throttle.retry_after(_address(), "user99") == 0


async def test_further_failures_wait_longer() -> None:
    throttle, here = LoginThrottle(), _address()
    for _ in range(5):
        await throttle.record_failure(here, "amy")
    first = await throttle.retry_after(here, "amy")
    for _ in range(5):  # an attacker who keeps going reaches the 15-minute tier
        await throttle.record_failure(here, "amy")
    assert first <= 60 < await throttle.retry_after(here, "amy") <= 15 * 60


async def test_replicas_share_the_counts_through_redis() -> None:
    here = _address()
    replica_a, replica_b = LoginThrottle(REDIS_URL), LoginThrottle(REDIS_URL)
    for n in range(5):
        await (replica_a if n % 2 else replica_b).record_failure(here, "amy")
    assert await replica_a.retry_after(here, "amy") > 0
    assert await replica_b.retry_after(here, "amy") > 0


async def test_without_redis_sign_ins_are_not_blocked(caplog: pytest.LogCaptureFixture) -> None:
    throttle, here = LoginThrottle(f"redis://127.0.0.1:{dead_port()}/0"), _address()
    with caplog.at_level(logging.WARNING):
        await throttle.record_failure(here, "amy")
        assert await throttle.retry_after(here, "amy") == 0
    assert "login throttle unavailable" in caplog.text
