"""The inbox's search over a big record: ``python -m bench.search`` (a few minutes).

The record of bench/dashboard.py (100,000 conversations, 1,000,000 messages over 30 days) on
SQLite (FTS5) and, when it answers, PostgreSQL (tsvector; ``BENCH_DATABASE_URL``). One inbox
page (``Store.inbox``, 25 rows) for: a rare word (one order number), a common word (in every
conversation), a word prefix, two words, a filter without words (state and team), and no
filter at all; p50 and p95 over the repeats. The target: interactive, well under a second.

Results: printed, and written to ``bench/results/<date>-search.json``.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from bench.dashboard import command_line, populate, quantile
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


def main(argv: list[str] | None = None) -> int:
    return command_line(measure, "search", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
