"""Contract tests for bot.broker, run against InProcessBroker and against a real Redis.

Redis comes from ``CSBOT_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). Every test run
uses its own key prefix (and every test its own sub-prefix), so runs and tests never see each
other's keys or channels; the run's keys are deleted at the end. An unreachable Redis fails the
Redis tests -- it is never a reason to skip them. The restart tests (test_redis_restart.py)
start their own private ``redis-server`` on a free port, because they have to kill it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from bot.broker import Broker, InProcessBroker, RedisBroker
from tests.bot.broker.support import REDIS_URL, RUN_PREFIX, BrokerFactory, unique_prefix


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The shared test Redis; fails (never skips) when it is not reachable."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.fail(
            f"Redis is required for the RedisBroker tests but {REDIS_URL} is not reachable: "
            f"{type(exc).__name__}: {exc}\n"
            "Start Redis (e.g. `redis-server --port 6379`) or set CSBOT_TEST_REDIS_URL.",
            pytrace=False,
        )
    try:
        yield REDIS_URL
    finally:
        for key in client.scan_iter(match=f"{RUN_PREFIX}*", count=1000):
            client.delete(key)
        client.close()


@pytest.fixture(params=["memory", "redis"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Every contract test runs once per implementation."""
    return str(request.param)


@pytest.fixture
async def make_broker(
    broker_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[BrokerFactory]:
    """Creates brokers of the kind under test; Redis ones share this test's own prefix."""
    created: list[Broker] = []
    prefix = unique_prefix()
    url: str | None = request.getfixturevalue("redis_url") if broker_kind == "redis" else None

    def make(**kwargs: Any) -> Broker:
        broker: Broker
        if url is None:
            broker = InProcessBroker(**kwargs)
        else:
            broker = RedisBroker(url, prefix=prefix, **kwargs)
        created.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in created:
            await broker.close()


@pytest.fixture
def broker(make_broker: BrokerFactory) -> Broker:
    return make_broker()


@pytest.fixture
def replicas(broker_kind: str, make_broker: BrokerFactory) -> tuple[Broker, Broker]:
    """Two gateway replicas: two RedisBrokers on one Redis, or the one in-process broker."""
    if broker_kind == "memory":
        only = make_broker()
        return only, only
    return make_broker(), make_broker()
