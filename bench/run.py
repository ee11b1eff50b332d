"""Benchmark the gateway: ``python -m bench.run`` (``make bench``). See docs/performance.md.

Five figures, each a ratio (or a bound) measured within one run, because this machine is
shared and noisy:

* ``p1_latency_ratio``, ``p1_throughput_ratio``: bot turns through the gateway vs straight to
  Rasa's REST webhook, same model;
* ``p2_capacity_ratio``: gateway msgs/s with a stub bot vs a bare websocket relay (and both
  vs a websocket echo, the ceiling);
* ``p3_p99_ms``: human-mode delivery, customer -> agent console and agent -> customer;
* ``p4_kb_per_socket``: gateway RSS per idle widget websocket, 10,000 open;
* ``p5_replica_speedup``: bot-path throughput with two Rasa replicas vs one.

Order, to fit in ten minutes on two cores: the Rasa replicas load while P4 (memory; not
timing-sensitive) and P3's set-up (not measured) run; then, on a quiet machine, P3's
measurement, P2, P1 and P5. Results: ``bench/results/<date>.json`` and ``.png``; process
logs: ``var/bench/logs``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import botpath, capacity, memory
from bench.human import HumanPhase
from bench.plot import write_plot
from bench.procs import ROOT, Children, git_state, machine_info, raise_nofile_limit
from bench.services import Gateway, RasaCluster, start_gateway, stop_gateway
from scripts import devctl

RESULTS = ROOT / "bench" / "results"
RUN_DIR = ROOT / "var" / "bench"
PHASES = ("p1", "p2", "p3", "p4", "p5")
TARGETS: dict[str, tuple[str, float]] = {
    "p1_latency_ratio": ("<=", 1.10),
    "p1_throughput_ratio": (">=", 0.95),
    "p2_capacity_ratio": (">=", 0.7),
    "p3_p99_ms": ("<=", 10.0),
    "p4_kb_per_socket": ("<=", 50.0),
    "p5_replica_speedup": (">=", 1.7),
}
FIGURE_PHASE = {key: key[:2] for key in TARGETS}
SAMPLE_KEYS = ("latency_samples_s", "saturation_latency_samples_s")


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one run (``--quick`` shrinks them for a smoke test)."""

    window_s: float = 8.0
    rounds: int = 3
    bot_customers: int = 24
    p2_customers: int = 32
    p2_window_s: float = 7.0
    p3_conversations: int = 100
    p3_rate: float = 200.0
    p3_duration_s: float = 15.0
    p4_sockets: int = 10_000
    # The run should end within budget_s; P2 + P1/P5 (three rounds) + stopping take about this:
    budget_s: float = 560.0
    seconds_after_p3: float = 240.0


QUICK = Plan(
    window_s=4.0,
    rounds=1,
    bot_customers=12,
    p2_customers=16,
    p2_window_s=3.0,
    p3_conversations=20,
    p3_rate=50.0,
    p3_duration_s=5.0,
    p4_sockets=1000,
)


def meets(key: str, value: float | None) -> bool | None:
    if value is None or math.isnan(value):
        return None
    op, target = TARGETS[key]
    return value <= target if op == "<=" else value >= target


class Bench:
    """One benchmark run: its processes, figures, details and samples for the plot."""

    def __init__(self, phases: Sequence[str], plan: Plan, profile: bool) -> None:
        self.phases, self.plan = set(phases), plan
        self.started = time.monotonic()
        if RUN_DIR.exists():
            shutil.rmtree(RUN_DIR)
        RUN_DIR.mkdir(parents=True)
        self.profile_dir = RESULTS / "profiles" if profile else None
        self.children = Children(RUN_DIR / "logs", self.profile_dir)
        self.cluster: RasaCluster | None = None
        self.figures: dict[str, float | None] = dict.fromkeys(TARGETS)
        self.details: dict[str, Any] = {"errors": {}, "phase_seconds": {}}
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.git = git_state()  # at the start: the code the gateways were started from
        self.rounds = plan.rounds

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)

    async def phase(self, name: str, work: Awaitable[Any]) -> Any:
        """Run one phase; a failure is recorded and the run goes on."""
        self.say(f"{name}: start")
        started = time.monotonic()
        try:
            result = await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.details["errors"][name] = f"{type(exc).__name__}: {exc}"
            self.say(f"{name}: FAILED: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stdout)
            return None
        finally:
            self.details["phase_seconds"][name] = round(time.monotonic() - started, 1)
        self.say(f"{name}: done in {time.monotonic() - started:.0f} s")
        return result

    def record(self, name: str, result: dict[str, Any]) -> None:
        """File a phase's figures, details and latency samples."""
        for key in list(result):
            if key in TARGETS:
                self.figures[key] = result.pop(key)
        for key in SAMPLE_KEYS:
            if key in result:
                label = name if key == "latency_samples_s" else f"{name}_saturation"
                self.samples[label] = result.pop(key)
        self.details[name] = result

    async def recorded(self, name: str, work: Awaitable[dict[str, Any]]) -> None:
        result = await self.phase(name, work)
        if result is not None:
            self.record(name, result)

    def fail(self, names: Sequence[str], error: str) -> None:
        for name in names:
            if name in self.phases:
                self.details["errors"][name] = error

    async def run(self) -> None:
        main = asyncio.current_task()
        if main is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
        plan, want = self.plan, self.phases
        rasa_ready: asyncio.Task[float] | None = None
        if want & {"p1", "p5"}:
            model = devctl.train()
            self.cluster = RasaCluster(model, 2 if "p5" in want else 1, RUN_DIR / "rasa")
            self.cluster.launch()
            rasa_ready = asyncio.create_task(self.cluster.wait_ready())
            self.say(f"loading {model.name} into {len(self.cluster.urls)} Rasa replica(s)")

        human = HumanPhase(self.children, RUN_DIR, self.say, plan.p3_conversations)
        rasa_ok = False
        try:
            # Not timing-sensitive, so they overlap with the model loading.
            overlapped = []
            if "p4" in want:
                overlapped.append(
                    self.recorded(
                        "p4",
                        memory.run(self.children, RUN_DIR, self.say, sockets=plan.p4_sockets),
                    )
                )
            if "p3" in want:
                overlapped.append(self.phase("p3_setup", human.setup()))
            await asyncio.gather(*overlapped)
            rasa_ok = await self._rasa_ready(rasa_ready)

            if "p3" in want and "p3_setup" not in self.details["errors"]:
                await self.recorded(
                    "p3", human.measure(rate=plan.p3_rate, duration=plan.p3_duration_s)
                )
            elif "p3" in want:
                self.details["errors"]["p3"] = "set-up failed: " + self.details["errors"].get(
                    "p3_setup", "?"
                )
        finally:
            await human.close()

        self._fit_budget()
        if "p2" in want:
            await self.recorded(
                "p2",
                capacity.run(
                    self.children,
                    RUN_DIR,
                    self.say,
                    customers=plan.p2_customers,
                    window=plan.p2_window_s,
                    rounds=self.rounds,
                ),
            )
        if rasa_ok and self.cluster is not None:
            await self._bot_phases(self.cluster)

    def _fit_budget(self) -> None:
        """When the start (model loading, P4, P3) ran long on a busy machine, P2 and P1/P5
        get one round instead of two, so that the whole run stays within the budget."""
        left = self.plan.budget_s - (time.monotonic() - self.started)
        needed = self.plan.seconds_after_p3
        if self.rounds > 1 and left < needed:
            self.rounds = 1
            self.details["rounds_reduced"] = (
                f"{left:.0f} s left of the {self.plan.budget_s:.0f} s budget after P3, "
                f"{needed:.0f} s needed for {self.plan.rounds} rounds: P2 and P1/P5 ran 1 round"
            )
            self.say("busy machine: " + self.details["rounds_reduced"])

    async def _rasa_ready(self, task: asyncio.Task[float] | None) -> bool:
        if task is None:
            return False
        try:
            seconds = await task
        except Exception as exc:
            self.fail(["p1", "p5"], f"Rasa did not start: {exc}")
            self.say(f"Rasa did not start: {exc}")
            return False
        self.details["rasa_ready_s"] = round(seconds, 1)
        self.say(f"Rasa ready ({seconds:.0f} s after launch)")
        return True

    async def _bot_phases(self, cluster: RasaCluster) -> None:
        plan = self.plan
        gateways = []
        try:
            one = await start_gateway(self.children, "gateway-r1", cluster.urls[:1], RUN_DIR)
            gateways.append(one)
            two: Gateway | None = None
            if "p5" in self.phases:
                two = await start_gateway(self.children, "gateway-r2", cluster.urls, RUN_DIR)
                gateways.append(two)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                results = await self.phase(
                    "p1+p5",
                    botpath.run_bot(
                        http,
                        cluster,
                        one,
                        two,
                        self.say,
                        p1="p1" in self.phases,
                        customers=plan.bot_customers,
                        window=plan.window_s,
                        rounds=self.rounds,
                    ),
                )
            if results is None:
                error = self.details["errors"].pop("p1+p5")
                self.fail(["p1", "p5"], error)
            else:
                for name, result in results.items():
                    self.record(name, result)
        except Exception as exc:  # a gateway that does not start
            self.fail(["p1", "p5"], f"{type(exc).__name__}: {exc}")
            self.say(f"bot phases: {exc}")
        finally:
            for gateway in gateways:
                stop_gateway(self.children, gateway)
            cluster.stop()

    def cleanup(self) -> None:
        """Stop every process this run started (also after Ctrl-C)."""
        self.children.stop_all()
        if self.cluster is not None:
            self.cluster.stop()

    def report(self, stem: str, interrupted: bool) -> dict[str, Any]:
        total = time.monotonic() - self.started
        details = {
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": "python -m bench.run " + " ".join(sys.argv[1:]),
            "total_seconds": round(total, 1),
            "interrupted": interrupted,
            "plan": {**self.plan.__dict__, "rounds_run": self.rounds},
            "phases": sorted(self.phases),
            "targets": {k: f"{op} {v:g}" for k, (op, v) in TARGETS.items()},
            "met": {k: meets(k, v) for k, v in self.figures.items()},
            "machine": machine_info(),
            "git": self.git,
            "logs": str(RUN_DIR.relative_to(ROOT) / "logs"),
            **self.details,
        }
        return {**self.figures, "details": details}

    def write(self, document: dict[str, Any], stem: str) -> tuple[Path, Path | None]:
        RESULTS.mkdir(parents=True, exist_ok=True)
        json_path = RESULTS / f"{stem}.json"
        json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
        png_path = RESULTS / f"{stem}.png"
        title = (
            f"csbot gateway benchmark {stem} ({document['details']['machine']['nproc']} cores, "
            f"total {document['details']['total_seconds']:.0f} s)"
        )
        if not write_plot(png_path, self.samples, document, title):
            return json_path, None
        return json_path, png_path


def print_table(document: dict[str, Any]) -> None:
    details = document["details"]
    print("\nfigure                  measured      target   result")
    print("-" * 56)
    for key, (op, target) in TARGETS.items():
        value = document.get(key)
        met = meets(key, value)
        shown = "—" if value is None else f"{value:.3f}" if value < 100 else f"{value:.0f}"
        phase = FIGURE_PHASE[key]
        if met is not None:
            verdict = "met" if met else "MISSED"
        elif phase in details.get("errors", {}):
            verdict = "FAILED"
        else:
            verdict = "not run" if phase not in details.get("phases", []) else "n/a"
        print(f"{key:22s} {shown:>10s}   {op} {target:<6g}   {verdict}")
    lines = []
    p1 = details.get("p1")
    if p1:
        lat, tp = p1["latency_ms"], p1["throughput"]
        lines.append(
            f"P1 p50 {lat['gateway']['p50']:.0f} vs {lat['direct']['p50']:.0f} ms; "
            f"{tp['gateway']['rate_per_s']:.1f} vs {tp['direct']['rate_per_s']:.1f} turns/s"
        )
    p2 = details.get("p2")
    if p2:
        arms = p2["arms"]
        lines.append(
            f"P2 msgs/s: gateway {arms['gateway']['rate_per_s']:.0f}, relay "
            f"{arms['relay']['rate_per_s']:.0f}, echo {arms['echo']['rate_per_s']:.0f} "
            f"(gateway/echo {p2['gateway_vs_echo']}, relay/echo {p2['relay_vs_echo']})"
        )
    p3 = details.get("p3")
    if p3:
        c2a, a2c = p3["customer_to_agent_ms"], p3["agent_to_customer_ms"]
        lines.append(
            f"P3 customer->agent p50/p95/p99 {c2a.get('p50')}/{c2a.get('p95')}/{c2a.get('p99')} "
            f"ms; agent->customer {a2c.get('p50')}/{a2c.get('p95')}/{a2c.get('p99')} ms; "
            f"lost {sum(p3['lost'].values())}"
        )
    p5 = details.get("p5")
    if p5:
        arms = p5["arms"]
        lines.append(
            f"P5 turns/s: one replica {arms['one_replica']['rate_per_s']:.1f}, two "
            f"{arms['two_replicas']['rate_per_s']:.1f}"
        )
    for name, error in details.get("errors", {}).items():
        lines.append(f"{name} failed: {error.splitlines()[0][:150]}")
    print("\n".join(lines))
    print(f"total {details['total_seconds']:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--only", help=f"comma-separated phases to run (default: all of {','.join(PHASES)})"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record every gateway with py-spy into bench/results/profiles/ (slows it down)",
    )
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.only.split(",")] if args.only else list(PHASES)
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    py_spy = Path(sys.executable).parent / "py-spy"
    if args.profile and not py_spy.exists():
        parser.error(
            f"--profile needs py-spy: {Path(sys.executable).parent / 'pip'} install py-spy"
        )
    raise_nofile_limit()
    bench = Bench(phases, QUICK if args.quick else Plan(), args.profile)
    stem = dt.date.today().isoformat()
    if args.only:
        stem += "-" + "-".join(sorted(phases))
    if args.quick:
        stem += "-quick"
    if args.profile:
        stem += "-profile"
    interrupted = False
    try:
        asyncio.run(bench.run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
        bench.say("interrupted: stopping everything")
    finally:
        bench.cleanup()
    document = bench.report(stem, interrupted)
    if interrupted:
        print_table(document)
        print("interrupted: no results file written")
        return 130
    json_path, png_path = bench.write(document, stem)
    print_table(document)
    print(f"results: {json_path.relative_to(ROOT)}")
    if png_path is not None:
        print(f"plot:    {png_path.relative_to(ROOT)}")
    else:
        print("plot:    skipped (pip install matplotlib)")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
