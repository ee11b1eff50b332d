"""Closed-loop load windows: N customers, each sending and waiting, for a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.procs import CpuMeter
from bench.stats import summary_ms


@dataclass
class Sample:
    """One request/response pair: perf_counter() times of the send and of the answer."""

    started: float
    ended: float
    label: str = ""
    ok: bool = True


Customer = Callable[[asyncio.Event, list[Sample]], Awaitable[None]]


@dataclass
class Window:
    """What one arm did in one measurement window."""

    arm: str
    samples: list[Sample]
    start: float
    end: float
    ramp: float
    cpu: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def measured(self) -> list[Sample]:
        """Answered samples that finished inside the window, after the ramp-up."""
        lo = self.start + self.ramp
        return [s for s in self.samples if s.ok and lo <= s.ended <= self.end]

    @property
    def seconds(self) -> float:
        return self.end - self.start - self.ramp

    @property
    def rate(self) -> float:
        return len(self.measured) / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> int:
        return sum(1 for s in self.samples if not s.ok)

    def latencies(self) -> list[float]:
        return [s.ended - s.started for s in self.measured]

    def to_dict(self) -> dict[str, Any]:
        count = len(self.measured)
        per_message = {
            k.replace("_cpu_s", "_cpu_ms_per_msg"): round(1000 * v / count, 3)
            for k, v in self.cpu.items()
            if k.endswith("_cpu_s") and count
        }
        return {
            "arm": self.arm,
            "messages": count,
            "seconds": round(self.seconds, 3),
            "rate_per_s": round(self.rate, 2),
            "failed": self.failed,
            "latency_ms": summary_ms(self.latencies()),
            "cpu": self.cpu,
            **per_message,
            **({"errors": self.errors[:5]} if self.errors else {}),
        }


async def run_window(
    arm: str,
    customer: Customer,
    customers: int,
    duration: float,
    ramp: float,
    cpu_pids: dict[str, int] | None = None,
    drain_timeout: float = 20.0,
) -> Window:
    """Run ``customers`` copies of ``customer`` for ``duration`` seconds, then let them finish
    the turn they are in (so nothing of this window spills into the next one)."""
    stop = asyncio.Event()
    samples: list[Sample] = []
    errors: list[str] = []
    meter = CpuMeter(cpu_pids or {})

    async def guarded() -> None:
        while not stop.is_set():
            try:
                await customer(stop, samples)
            except (aiohttp.ClientError, OSError, RuntimeError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.2)

    start = time.perf_counter()
    tasks = [asyncio.create_task(guarded()) for _ in range(customers)]
    # CPU is read over the measured part only, so that CPU per message matches the count.
    await asyncio.sleep(ramp)
    meter.start()
    await asyncio.sleep(max(0.0, duration - ramp))
    end = time.perf_counter()
    cpu = meter.stop()
    stop.set()
    _, pending = await asyncio.wait(tasks, timeout=drain_timeout)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    return Window(arm, samples, start, end, ramp, cpu, errors)


def combine(windows: list[Window]) -> dict[str, Any]:
    """Rounds of one arm together: total messages / total seconds, pooled latencies."""
    count = sum(len(w.measured) for w in windows)
    seconds = sum(w.seconds for w in windows)
    latencies = [x for w in windows for x in w.latencies()]
    cpu: dict[str, float] = {}
    for w in windows:
        for key, value in w.cpu.items():
            if key.endswith("_cpu_s"):
                cpu[key] = cpu.get(key, 0.0) + value
    busy = [w.cpu["machine_busy"] for w in windows if "machine_busy" in w.cpu]
    return {
        "messages": count,
        "seconds": round(seconds, 3),
        "rate_per_s": round(count / seconds, 2) if seconds else 0.0,
        "rounds_rate_per_s": [round(w.rate, 2) for w in windows],
        "failed": sum(w.failed for w in windows),
        "latency_ms": summary_ms(latencies),
        "cpu_ms_per_msg": {
            k.removesuffix("_cpu_s"): round(1000 * v / count, 3) for k, v in cpu.items() if count
        },
        "cores_used": {
            k.removesuffix("_cpu_s"): round(v / seconds, 3) for k, v in cpu.items() if seconds
        },
        "machine_busy": round(sum(busy) / len(busy), 3) if busy else None,
    }
