"""Summarise a py-spy profile: ``python -m bench.profile bench/results/profiles/gateway-p2.txt``.

``python -m bench.run --profile`` records every gateway with ``py-spy record --gil --format raw``
(collapsed stacks: ``frame;frame;... count``, sampled only while a thread holds the GIL, i.e.
Python CPU time). This prints where that time goes: the share of samples under each of the
gateway's own functions (inclusive), grouped by area, and the top functions by self time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")
# A sample counts once in every area found on its stack (areas overlap).
AREAS = [
    ("SQL via SQLAlchemy (and aiosqlite, if used)", ("sqlalchemy/", "aiosqlite/")),
    ("gateway store (bot/store/)", ("bot/store/",)),
    ("queue view (queue_snapshot)", ("queue_snapshot",)),
    ("handoff packet (handoff/*)", ("handoff/packet.py", "handoff/summary.py", "redact.py")),
    ("sentiment", ("handoff/sentiment.py",)),
    ("HTTP client to the bot (aiohttp client)", ("aiohttp/client",)),
    ("websocket frames (aiohttp ws)", ("aiohttp/_websocket", "aiohttp/web_ws.py")),
    ("JSON", ("json/",)),
    ("logging (structlog/logging)", ("structlog/", "logging/")),
    ("argon2 / signing", ("argon2", "bot/signing.py", "hmac.py")),
]


def parse(lines: Iterable[str]) -> tuple[list[tuple[list[str], int]], int]:
    stacks, total = [], 0
    for line in lines:
        line = line.rstrip()
        if not line or " " not in line:
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
        total += int(count)
    return stacks, total


def _name(frame: str) -> str:
    match = FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"]
    for root in ("site-packages/", "python3.11/"):
        if root in path:
            path = path.split(root, 1)[1]
    return f"{match['func']} ({path})"


def summarise(path: Path, top: int = 25, match: str = "") -> str:
    stacks, total = parse(path.read_text().splitlines())
    if not total:
        return f"{path}: no samples"
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    for frames, count in stacks:
        names = [_name(f) for f in frames]
        for name in set(names):
            inclusive[name] += count
        own[names[-1]] += count
        joined = ";".join(frames)
        for area, needles in AREAS:
            if any(n in joined for n in needles):
                areas[area] += count
    out = [f"{path.name}: {total} samples with the GIL held"]
    out.append("\nby area (a sample counts in every area on its stack):")
    for area, count in areas.most_common():
        out.append(f"  {100 * count / total:5.1f}%  {area}")
    out.append("\ngateway functions, inclusive:")
    ours = [
        (name, count)
        for name, count in inclusive.most_common()
        if any(p in name for p in ("(bot/", "(connectors/", "(handoff/")) and match in name
    ]
    for name, count in ours[:top]:
        out.append(f"  {100 * count / total:5.1f}%  {name}")
    out.append("\ntop self time:")
    for name, count in own.most_common(top // 2):
        out.append(f"  {100 * count / total:5.1f}%  {name}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only gateway functions containing this")
    args = parser.parse_args()
    for path in args.profiles:
        print(summarise(path, args.top, args.match))
        print()


if __name__ == "__main__":
    main()
