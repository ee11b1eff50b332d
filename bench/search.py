"""The inbox's search over a big record: ``python -m bench.search`` (a few minutes).

The record of bench/dashboard.py (100,000 conversations, 1,000,000 messages over 30 days) on
SQLite (FTS5) and, when it answers, PostgreSQL (tsvector; ``BENCH_DATABASE_URL``). One inbox
page (``Store.inbox``, 25 rows) for: a rare word (one order number), a common word (in every
conversation), a word prefix, two words, a filter without words (state and team), and no
filter at all; p50 and p95 over the repeats. The target: interactive, well under a second.

Results: printed, and written to ``bench/results/<date>-search.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.dashboard import populate, quantile
from bench.routing import RESULTS, postgres
from bot.core.models import InboxFilter
from bot.store import Store

REPEATS = 10
QUERIES: dict[str, InboxFilter] = {
    "rare word (an order number)": InboxFilter(text="1777"),
    "common word": InboxFilter(text="order"),
    "prefix": InboxFilter(text="ord"),
    "two words": InboxFilter(text="where order"),
    "state and team, no words": InboxFilter(states=("bot",), team="orders"),
    "everything, newest first": InboxFilter(),
}


async def measure(url: str, backend: str, count: int) -> dict[str, Any]:
    print(f"{backend}: {count:,} conversations, {count * 10:,} messages", flush=True)
    store = await Store.connect(url)
    await store.migrate()
    figures: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        await populate(store, count)
        print(f"  populated in {time.perf_counter() - started:.0f} s", flush=True)
        for name, where in QUERIES.items():
            times = []
            rows: list[Any] = []
            for _ in range(REPEATS):
                begun = time.perf_counter()
                rows, _more = await store.inbox(where, 25, 0)
                times.append(time.perf_counter() - begun)
            figures[name] = {
                "p50_ms": round(statistics.median(times) * 1000, 1),
                "p95_ms": round(quantile(times, 0.95) * 1000, 1),
                "rows": len(rows),
            }
            print(f"  {name}: p95 {figures[name]['p95_ms']} ms ({len(rows)} rows)", flush=True)
    finally:
        await store.close()
    return figures


async def main_async(count: int, out: Path | None) -> int:
    results: dict[str, Any] = {"date": dt.date.today().isoformat(), "conversations": count}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = await measure(f"sqlite:///{tmp}/bench.sqlite3", "sqlite", count)
    async with postgres() as url:
        if url is not None:
            results["postgresql"] = await measure(url, "postgresql", count)
    path = out or RESULTS / f"{results['date']}-search.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--out", type=Path, help="where to write the JSON figures")
    args = parser.parse_args(argv)
    if args.conversations < 100:
        print("error: --conversations must be 100 or more", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args.conversations, args.out))


if __name__ == "__main__":
    sys.exit(main())
