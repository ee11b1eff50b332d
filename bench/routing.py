"""Routing and SLA sweeps at contact-center scale: ``python -m bench.routing`` (about a minute).

10,000 open conversations wait in the queues of four teams, each with its SLA clocks, and 200
agents work them. Measured on SQLite and, when it answers, on PostgreSQL
(``BENCH_DATABASE_URL``, default ``postgresql://127.0.0.1/test``; a throwaway database is
created there and dropped):

* **assignment**: 200 agents come online with room for 3 conversations each; the push
  router hands out 600 conversations. Figure: milliseconds per assignment (wall time of the
  drains / conversations assigned).
* **sweep, nothing due**: the SLA sweep when none of the 10,000 clocks has anything due (what
  it costs every few seconds, on every replica), against a naive sweep that reads every
  running clock in the same run (the ratio is the figure that does not depend on how busy the
  machine is).
* **sweep, 100 due**: the sweep acting on 100 warnings (compare-and-set, audit entry, a
  console notice each): milliseconds per clock.
* **sweep cost per second**: the nothing-due sweep's time divided by the sweep interval
  (``rasa.retry_seconds``, 5 s by default): the share of one core that watching 10,000 clocks
  takes.

Results: printed, and written to ``bench/results/<date>-routing.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

from bot.broker.memory import InProcessBroker
from bot.config import Settings
from bot.rasa_client import RasaClient
from bot.store import Store
from bot.store.schema import conversations, customers, handoffs, new_id, sla_clocks
from bot.wiring import build_engine

RESULTS = Path(__file__).resolve().parent / "results"
TEAMS = ["front", "orders", "tech", "experts"]
CONVERSATIONS = 10_000
AGENTS = 200
CAPACITY = 3
DUE = 100
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def settings(url: str) -> Settings:
    return Settings.model_validate(
        {
            "database_url": url,
            "secret_key": "bench-secret-key-0123456789abcdef",
            "queue": {
                "default_team": "front",
                "teams": [{"name": t, "assignment": "push"} for t in TEAMS],
            },
            "sla": [{"first_response_minutes": 30, "resolution_minutes": 240}],
        }
    )


def progress(text: str) -> None:
    print(f"  {text}", flush=True)


async def populate(store: Store, engine: Any, clock: Clock) -> None:
    """10,000 queued conversations with their handoffs and two running clocks each, queued in
    the broker; 200 agents, away. Bulk inserts: this is set-up, not what is measured."""
    rows_customers, rows_conversations, rows_handoffs, rows_clocks = [], [], [], []
    for i in range(CONVERSATIONS):
        customer, conversation = new_id(), new_id()
        team = TEAMS[i % len(TEAMS)]
        since = NOW - timedelta(seconds=CONVERSATIONS - i)
        rows_customers.append({"id": customer, "created_at": since})
        rows_conversations.append(
            {
                "id": conversation,
                "customer_id": customer,
                "channel": "webchat",
                "channel_user_id": f"bench-{i}",
                "state": "queued",
                "version": 1,
                "team": team,
                "priority": "normal",
                "created_at": since,
                "updated_at": since,
            }
        )
        rows_handoffs.append(
            {
                "id": i + 1,
                "conversation_id": conversation,
                "packet": {},
                "reason": "bench",
                "team": team,
                "priority": "normal",
                "requested_at": since,
            }
        )
        # Spread over the next 30 minutes, so that none is due at NOW.
        for kind, minutes in (("first_response", 30), ("resolution", 240)):
            due = NOW + timedelta(minutes=minutes, seconds=i % 600)
            rows_clocks.append(
                {
                    "conversation_id": conversation,
                    "handoff_id": i + 1,
                    "kind": kind,
                    "team": team,
                    "started_at": since,
                    "warn_at": due - timedelta(minutes=5),
                    "due_at": due,
                    "next_check_at": due - timedelta(minutes=5),
                }
            )
    async with store._tx(write=True) as conn:
        for table, rows in (
            (customers, rows_customers),
            (conversations, rows_conversations),
            (handoffs, rows_handoffs),
            (sla_clocks, rows_clocks),
        ):
            for start in range(0, len(rows), 2000):
                await conn.execute(table.insert(), rows[start : start + 2000])
    for row in rows_conversations:
        await engine.queue.enqueue(row["id"], "normal", row["created_at"], row["team"])
    for n in range(AGENTS):
        agent = await store.add_agent(
            f"agent{n}", f"Agent {n}", "x", teams=[TEAMS[n % len(TEAMS)]], capacity=CAPACITY
        )
        await store.update_agent(agent.id, availability="away")


async def naive_sweep(store: Store) -> int:
    """What a sweep without stored deadlines and an index would do: read every running clock."""
    async with store._tx() as conn:
        rows = (
            await conn.execute(sa.select(sla_clocks).where(sla_clocks.c.stopped_at.is_(None)))
        ).all()
    return sum(1 for row in rows if row.next_check_at <= NOW)


async def timed(repeats: int, call: Any) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return times


async def measure(url: str, backend: str) -> dict[str, Any]:
    print(f"{backend}: 10,000 open conversations, 200 agents", flush=True)
    clock = Clock()
    config = settings(url)
    store = await Store.connect(url)
    await store.migrate()
    broker = InProcessBroker()
    try:
        async with aiohttp.ClientSession() as http:
            rasa = RasaClient(["http://127.0.0.1:9"], None, http, 0.5)
            engine = build_engine(config, store, broker, rasa, clock=clock)
            started = time.perf_counter()
            await populate(store, engine, clock)
            progress(f"populated in {time.perf_counter() - started:.1f} s")

            nothing = await timed(20, engine.starter.sla.sweep)
            naive = await timed(5, lambda: naive_sweep(store))
            progress(f"sweep with nothing due: {statistics.median(nothing) * 1000:.2f} ms")

            started = time.perf_counter()
            for agent in await store.agents():
                await broker.set_presence(f"agent:{agent.id}", 3600)
                await store.update_agent(agent.id, availability="online")
            assigned = len(await engine.router.drain())
            assign_s = time.perf_counter() - started
            progress(f"assigned {assigned} in {assign_s:.1f} s")
            idle_drain = await timed(5, engine.router.drain)  # everyone full: nothing to do

            # 100 clocks reach their warning: move those forward in time.
            async with store._tx(write=True) as conn:
                ids = (
                    (
                        await conn.execute(
                            sa.select(sla_clocks.c.id)
                            .where(sla_clocks.c.next_check_at.is_not(None))
                            .order_by(sla_clocks.c.next_check_at)
                            .limit(DUE)
                        )
                    )
                    .scalars()
                    .all()
                )
                await conn.execute(
                    sla_clocks.update()
                    .where(sla_clocks.c.id.in_(ids))
                    .values(next_check_at=NOW - timedelta(seconds=1), warn_at=NOW)
                )
            started = time.perf_counter()
            acted = await engine.starter.sla.sweep()
            due_s = time.perf_counter() - started
            progress(f"sweep acting on {acted} warnings: {due_s * 1000:.0f} ms")
    finally:
        await broker.close()
        await store.close()
    interval = config.rasa.retry_seconds
    sweep_ms = statistics.median(nothing) * 1000
    naive_ms = statistics.median(naive) * 1000
    return {
        "conversations": CONVERSATIONS,
        "agents": AGENTS,
        "assigned": assigned,
        "ms_per_assignment": round(assign_s * 1000 / max(1, assigned), 2),
        "drain_when_all_full_ms": round(statistics.median(idle_drain) * 1000, 2),
        "sweep_nothing_due_ms": round(sweep_ms, 3),
        "naive_full_read_ms": round(naive_ms, 1),
        "naive_over_indexed_sweep": round(naive_ms / sweep_ms, 1) if sweep_ms else None,
        "sweep_acted_on": acted,
        "ms_per_clock_acted_on": round(due_s * 1000 / max(1, acted), 2),
        "sweep_interval_s": interval,
        "sweep_share_of_a_core": round(sweep_ms / 1000 / interval, 6),
    }


@asynccontextmanager
async def postgres() -> AsyncIterator[str | None]:
    """A throwaway PostgreSQL database, or None when there is no server."""
    base = os.environ.get("BENCH_DATABASE_URL", "postgresql://127.0.0.1/test")
    name = f"csbot_bench_{secrets.token_hex(4)}"
    try:
        import asyncpg
    except ImportError:
        yield None
        return
    dsn = base.replace("postgresql+asyncpg://", "postgresql://")
    try:
        admin = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL not reachable at {base} ({exc}): SQLite only", flush=True)
        yield None
        return
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main_async(out: Path | None) -> int:
    results: dict[str, Any] = {"date": dt.date.today().isoformat()}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = await measure(f"sqlite:///{tmp}/bench.sqlite3", "sqlite")
    async with postgres() as url:
        if url is not None:
            results["postgresql"] = await measure(url, "postgresql")
    print()
    print(f"{'figure':<28}" + "".join(f"{k:>14}" for k in results if k != "date"))
    for key in results["sqlite"]:
        print(f"{key:<28}" + "".join(f"{results[b][key]!s:>14}" for b in results if b != "date"))
    path = out or RESULTS / f"{results['date']}-routing.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__)
    parser.add_argument("--out", type=Path, help="where to write the JSON figures")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args.out))


if __name__ == "__main__":
    sys.exit(main())
