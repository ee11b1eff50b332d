"""Sign-in throttling per address and per address + username, in memory and on the real Redis
(shared by replicas), counting parallel attempts, failing open when Redis is gone."""

from __future__ import annotations

import asyncio
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
async def throttle(request: pytest.FixtureRequest) -> LoginThrottle:
    limiter = LoginThrottle(None if request.param == "memory" else REDIS_URL)
    yield limiter  # type: ignore[misc]
    await limiter.close()


async def test_five_attempts_then_that_account_from_that_address_waits(
    throttle: LoginThrottle,
) -> None:
    here, there = _address(), _address()
    for _ in range(5):
        assert await throttle.attempt(here, "amy") == 0
    assert 0 < await throttle.attempt(here, " AMY ") <= 60  # however it is typed
    assert 0 < await throttle.retry_after(here, "amy") <= 60
    assert await throttle.attempt(there, "amy") == 0  # the real Amy, elsewhere
    assert await throttle.attempt(here, "bob") == 0
    await throttle.reset(here, "amy")  # a good sign-in
    assert await throttle.retry_after(here, "amy") == 0


async def test_many_usernames_from_one_address_are_throttled(throttle: LoginThrottle) -> None:
    here = _address()
    for n in range(20):  # one guess each for 20 accounts: no account limit is reached
        assert await throttle.attempt(here, f"user{n}") == 0
    assert await throttle.attempt(here, "user99") > 0
    assert await throttle.attempt(_address(), "user99") == 0


async def test_a_parallel_burst_gets_no_more_than_the_limit(throttle: LoginThrottle) -> None:
    here = _address()
    waits = await asyncio.gather(*(throttle.attempt(here, "amy") for _ in range(25)))
    assert sum(1 for wait in waits if wait == 0) == 5


async def test_replicas_share_the_counts_through_redis() -> None:
    here = _address()
    replica_a, replica_b = LoginThrottle(REDIS_URL), LoginThrottle(REDIS_URL)
    try:
        for n in range(5):
            assert await (replica_a if n % 2 else replica_b).attempt(here, "amy") == 0
        assert await replica_a.attempt(here, "amy") > 0
        assert await replica_b.attempt(here, "amy") > 0
    finally:
        await replica_a.close()
        await replica_b.close()


async def test_without_redis_sign_ins_are_not_blocked(caplog: pytest.LogCaptureFixture) -> None:
    throttle, here = LoginThrottle(f"redis://127.0.0.1:{dead_port()}/0"), _address()
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(10):
                assert await throttle.attempt(here, "amy") == 0
        assert "login throttle unavailable" in caplog.text
    finally:
        await throttle.close()
