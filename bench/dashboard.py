"""The supervisors' dashboard over a big record: ``python -m bench.dashboard`` (a few minutes).

100,000 conversations and 1,000,000 messages over 30 days; a fifth of the conversations were
handed to a person (their handoffs with wait, first reply and handle times, half of them
rated, two SLA clocks each, order numbers in the packets, and some customers who repeat them).
Measured on SQLite and, when it answers, on PostgreSQL (``BENCH_DATABASE_URL``, default
``postgresql://127.0.0.1/test``; a throwaway database is created there and dropped): the time
of one dashboard load (``Dashboard.report``: the live tiles and every figure of the period) for
the last 7 days and the last 30 days, all teams and one team; p50 and p95 over the repeats.
The target: interactive, well under a second.

``--conversations N`` scales the record down (messages stay ten per conversation). Results:
printed, and written to ``bench/results/<date>-dashboard.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.routing import RESULTS, postgres
from bot.broker.memory import InProcessBroker
from bot.config import Settings
from bot.rasa_client import RasaClient
from bot.store import Store
from bot.store.schema import conversations, csat, customers, handoffs, messages, new_id, sla_clocks
from bot.wiring import build_engine

TEAMS = ["general", "orders", "tech_support"]
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
REPEATS = 10


def quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


async def populate(store: Store, count: int) -> None:
    rnd = random.Random(7)
    rows: dict[str, list[dict[str, Any]]] = {
        "customers": [],
        "conversations": [],
        "messages": [],
        "handoffs": [],
        "csat": [],
        "sla_clocks": [],
    }
    handoff_id = 0
    for i in range(count):
        opened = NOW - timedelta(seconds=rnd.uniform(0, 30 * 86400))
        customer, conversation = new_id(), new_id()
        team = TEAMS[i % len(TEAMS)]
        rows["customers"].append({"id": customer, "created_at": opened})
        rows["conversations"].append(
            {
                "id": conversation,
                "customer_id": customer,
                "channel": "webchat",
                "channel_user_id": f"bench-{i}",
                "state": "bot",
                "version": 1,
                "team": team,
                "priority": "normal",
                "created_at": opened,
                "updated_at": opened,
                "last_seq": 10,
            }
        )
        handed = i % 5 == 0
        requested = opened + timedelta(seconds=40)
        order = str(1000 + i)
        for seq in range(1, 11):
            inbound = seq % 2 == 1
            at = opened + timedelta(seconds=seq * 8)
            text = "where is my order " + order if seq == 1 else f"message {seq}"
            if handed and seq == 7 and i % 10 == 0:
                text = f"it is order {order}"  # said again to the person
            rows["messages"].append(
                {
                    "conversation_id": conversation,
                    "seq": seq,
                    "direction": "in" if inbound else "out",
                    "sender_kind": "customer" if inbound else "bot",
                    "text": text,
                    "buttons": [],
                    "intent": "order_status" if inbound else None,
                    "confidence": 0.9 if inbound else None,
                    "created_at": at,
                }
            )
        if not handed:
            continue
        handoff_id += 1
        wait = rnd.uniform(10, 600)
        first = wait + rnd.uniform(5, 120)
        resolved = requested + timedelta(seconds=wait + rnd.uniform(60, 1200))
        rows["handoffs"].append(
            {
                "id": handoff_id,
                "conversation_id": conversation,
                "packet": {"facts": {"order_number": order}},
                "reason": rnd.choice(["explicit_request", "complaint", "troubleshooting_failed"]),
                "team": team,
                "priority": "normal",
                "requested_at": requested,
                "assigned_at": requested + timedelta(seconds=wait),
                "first_agent_reply_at": requested + timedelta(seconds=first),
                "resolved_at": resolved,
            }
        )
        if handoff_id % 2 == 0:
            rows["csat"].append(
                {
                    "conversation_id": conversation,
                    "handoff_id": handoff_id,
                    "rating": rnd.randint(1, 5),
                    "created_at": resolved,
                }
            )
        for kind, minutes in (("first_response", 2), ("resolution", 60)):
            due = requested + timedelta(minutes=minutes)
            rows["sla_clocks"].append(
                {
                    "conversation_id": conversation,
                    "handoff_id": handoff_id,
                    "kind": kind,
                    "team": team,
                    "started_at": requested,
                    "warn_at": due - timedelta(seconds=20),
                    "due_at": due,
                    "next_check_at": None,
                    "stopped_at": requested + timedelta(seconds=first),
                    "breached_at": due if first > minutes * 60 else None,
                }
            )
    tables = {
        "customers": customers,
        "conversations": conversations,
        "messages": messages,
        "handoffs": handoffs,
        "csat": csat,
        "sla_clocks": sla_clocks,
    }
    for name, table in tables.items():
        batch = rows[name]
        for start in range(0, len(batch), 5000):
            async with store._tx(write=True) as conn:
                await conn.execute(table.insert(), batch[start : start + 5000])
        print(f"  {name}: {len(batch):,} rows", flush=True)


async def measure(url: str, backend: str, count: int) -> dict[str, Any]:
    print(f"{backend}: {count:,} conversations, {count * 10:,} messages", flush=True)
    settings = Settings.model_validate(
        {"database_url": url, "secret_key": "bench-secret-key-0123456789abcdef"}
    )
    store = await Store.connect(url)
    await store.migrate()
    broker = InProcessBroker()
    figures: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        await populate(store, count)
        print(f"  populated in {time.perf_counter() - started:.0f} s", flush=True)
        async with aiohttp.ClientSession() as http:
            rasa = RasaClient(["http://127.0.0.1:9"], None, http, 0.5)
            engine = build_engine(settings, store, broker, rasa)
            dashboard = engine.desk.dashboard
            for days in (7, 30):
                for team in (None, "orders"):
                    times = []
                    report: dict[str, Any] = {}
                    for _ in range(REPEATS):
                        begun = time.perf_counter()
                        report = await dashboard.report(NOW - timedelta(days=days), NOW, team)
                        times.append(time.perf_counter() - begun)
                    key = f"{days}d_{team or 'all'}"
                    figures[key] = {
                        "p50_ms": round(statistics.median(times) * 1000, 1),
                        "p95_ms": round(quantile(times, 0.95) * 1000, 1),
                        "conversations": report["period"]["conversations"],
                        "handoffs": report["period"]["handoffs"],
                    }
                    print(f"  {key}: p95 {figures[key]['p95_ms']} ms", flush=True)
    finally:
        await broker.close()
        await store.close()
    return figures


Measure = Callable[[str, str, int], Awaitable[dict[str, Any]]]


async def on_both(measure: Measure, name: str, count: int, out: Path | None) -> int:
    """``measure`` on a fresh SQLite file and, when it answers, a throwaway PostgreSQL
    database; the figures printed and written to ``bench/results/<date>-<name>.json``."""
    results: dict[str, Any] = {"date": dt.date.today().isoformat(), "conversations": count}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = await measure(f"sqlite:///{tmp}/bench.sqlite3", "sqlite", count)
    async with postgres() as url:
        if url is not None:
            results["postgresql"] = await measure(url, "postgresql", count)
    path = out or RESULTS / f"{results['date']}-{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {path}")
    return 0


def command_line(
    measure: Measure, name: str, description: str | None, argv: list[str] | None
) -> int:
    """``--conversations N`` (default 100,000) and ``--out PATH``, then :func:`on_both`."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--out", type=Path, help="where to write the JSON figures")
    args = parser.parse_args(argv)
    if args.conversations < 100:
        print("error: --conversations must be 100 or more", file=sys.stderr)
        return 2
    return asyncio.run(on_both(measure, name, args.conversations, args.out))


def main(argv: list[str] | None = None) -> int:
    return command_line(measure, "dashboard", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
