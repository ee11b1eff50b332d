"""P1 and P5: full bot turns with the trained model, through the gateway and straight to Rasa.

A customer plays one of ``SCRIPTS`` (greetings, order status with order numbers, speaker and
Wi-Fi troubleshooting, refunds, opening hours, password reset) as one conversation, then
the next customer arrives with the next script. Through the gateway a customer is a widget:
a fresh visitor session, a websocket, one message at a time, and a turn ends when all the
bot's reply frames for that message have arrived (how many the bot sends per message is
learnt once from Rasa at the start). Straight to Rasa a turn is one POST to the REST webhook.

* P1 latency: one customer at a time runs every script; p50 gateway / p50 direct.
* P1 throughput: ``customers`` concurrent customers (saturation); turns/s gateway / direct.
* P5: gateway turns/s with two Rasa replicas / with one, same model, same load.

P1 and P5 share their rounds: each round runs the latency passes, then one saturation window
per arm (gateway with one replica, direct, gateway with two replicas), so that drift on the
shared machine hits every arm alike; the one-replica windows count for both figures.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import aiohttp

from bench.clients import SessionPool, is_bot_message, open_widget, send_message, wait_frames
from bench.load import Sample, Window, combine, run_window
from bench.services import RASA_TOKEN, Gateway, RasaCluster
from bench.stats import percentile, ratio, summary_ms

SCRIPTS: list[list[str]] = [
    ["hi", "where is my order 1001?", "thanks", "bye"],
    ["hello", "my speaker is too quiet", "yes that fixed it", "thank you"],
    ["hey there", "my wifi keeps dropping", "it works now", "thanks a lot"],
    ["good morning", "what's the status of order 1004", "thanks, bye"],
    ["hi", "what are your opening hours?", "great, thanks", "bye"],
    ["hello", "I forgot my password", "thanks", "goodbye"],
    ["hey", "has my refund for order 1005 been processed?", "ok thanks"],
    ["hi", "where is my order", "1002", "thanks"],
]
TURN_TIMEOUT = 30.0

Expected = dict[tuple[int, int], int]


class Arm(Protocol):
    name: str

    async def run_script(self, index: int, stop: asyncio.Event, samples: list[Sample]) -> None:
        """Play script ``index`` as one new conversation, appending one sample per turn."""


class DirectArm:
    """Straight to Rasa's REST webhook (``sender`` = a fresh id per conversation), with the
    Rasa token that its channels require, as the gateway sends it."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        rasa_url: str,
        name: str = "direct",
        token: str = RASA_TOKEN,
    ) -> None:
        self.http, self.url, self.name = http, f"{rasa_url}/webhooks/rest/webhook", name
        self.params = {"token": token}

    async def turn(self, sender: str, text: str) -> list[dict[str, Any]]:
        body = {"sender": sender, "message": text}
        async with self.http.post(self.url, json=body, params=self.params) as resp:
            if resp.status != 200:
                raise RuntimeError(f"Rasa answered HTTP {resp.status}")
            replies: list[dict[str, Any]] = await resp.json()
            return replies

    async def run_script(self, index: int, stop: asyncio.Event, samples: list[Sample]) -> None:
        sender = f"bench-{uuid.uuid4().hex}"
        for text in SCRIPTS[index]:
            if stop.is_set():
                return
            started = time.perf_counter()
            await self.turn(sender, text)
            samples.append(Sample(started, time.perf_counter(), text))


class GatewayArm:
    """A widget customer: fresh session, websocket, wait for every bot reply frame."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        gateway: Gateway,
        expected: Expected,
        name: str = "gateway",
    ) -> None:
        self.http, self.gateway, self.expected, self.name = http, gateway, expected, name
        self.sessions = SessionPool(http, gateway.url)

    async def run_script(self, index: int, stop: asyncio.Event, samples: list[Sample]) -> None:
        ws = await open_widget(self.http, self.gateway.url, await self.sessions.take())
        try:
            for step, text in enumerate(SCRIPTS[index]):
                if stop.is_set():
                    return
                started = time.perf_counter()
                await send_message(ws, text)
                ok = await wait_frames(
                    ws, is_bot_message, self.expected[(index, step)], TURN_TIMEOUT
                )
                samples.append(Sample(started, time.perf_counter(), text, ok))
                if not ok:
                    return
        finally:
            await ws.close()


async def calibrate(http: aiohttp.ClientSession, rasa_url: str) -> Expected:
    """How many reply frames the gateway will send per (script, step): Rasa's replies that
    carry text or buttons (the gateway stores exactly those). Also warms Rasa up."""
    direct = DirectArm(http, rasa_url)
    expected: Expected = {}
    for index, script in enumerate(SCRIPTS):
        sender = f"calibrate-{uuid.uuid4().hex}"
        for step, text in enumerate(script):
            replies = await direct.turn(sender, text)
            count = sum(1 for r in replies if r.get("text") or r.get("buttons"))
            if count == 0:
                raise RuntimeError(f"the bot did not answer {text!r} (script {index})")
            expected[(index, step)] = count
    return expected


def _script_customer(arm: Arm, counter: Iterator[int]) -> Callable[..., Any]:
    async def customer(stop: asyncio.Event, samples: list[Sample]) -> None:
        await arm.run_script(next(counter) % len(SCRIPTS), stop, samples)

    return customer


async def sequential_pass(arm: Arm, repeats: int = 1) -> list[Sample]:
    """One customer at a time plays every script ``repeats`` times (unloaded latency)."""
    samples: list[Sample] = []
    never = asyncio.Event()
    for _ in range(repeats):
        for index in range(len(SCRIPTS)):
            await arm.run_script(index, never, samples)
    return samples


def _pids(gateway: Gateway | None, cluster: RasaCluster) -> dict[str, int]:
    pids = {name: proc.pid for name, proc in cluster.stack.procs}
    if gateway is not None:
        pids["gateway"] = gateway.child.pid
    pids["loadgen"] = os.getpid()
    return pids


def _latency_block(samples: list[Sample]) -> list[float]:
    return [s.ended - s.started for s in samples if s.ok]


async def run_bot(
    http: aiohttp.ClientSession,
    cluster: RasaCluster,
    one: Gateway,
    two: Gateway | None,
    say: Callable[[str], None],
    *,
    p1: bool = True,
    customers: int = 24,
    window: float = 8.0,
    rounds: int = 2,
    ramp: float = 1.5,
    latency_repeats: int = 2,
) -> dict[str, dict[str, Any]]:
    """P1 (when ``p1``) and P5 (when ``two`` is given) in shared, interleaved rounds.

    Each round: unloaded latency passes (gateway, direct), then saturation windows of the
    gateway with one replica, straight to Rasa, and the gateway with two replicas. The
    one-replica windows serve both P1 (vs direct) and P5 (vs two replicas).
    """
    expected = await calibrate(http, cluster.urls[0])
    if len(cluster.urls) > 1:
        await calibrate(http, cluster.urls[1])  # warms the second replica up
    arms: dict[str, Arm] = {"gateway": GatewayArm(http, one, expected)}
    if p1:
        arms["direct"] = DirectArm(http, cluster.urls[0])
    if two is not None:
        arms["two_replicas"] = GatewayArm(http, two, expected, "two_replicas")
    for arm in arms.values():
        if isinstance(arm, GatewayArm):
            await arm.sessions.fill(len(SCRIPTS) * latency_repeats * rounds + customers * 12)
            warm = await sequential_pass(arm)
            if not all(s.ok for s in warm):
                raise RuntimeError(f"{arm.name}: not every warm-up turn was answered; see logs")
    say(f"P1/P5 calibrated {len(expected)} turns; gateways warm")

    latency: dict[str, list[Sample]] = {"gateway": [], "direct": []}
    windows: dict[str, list[Window]] = {name: [] for name in arms}
    for index in range(rounds):
        if p1:
            for name in ("gateway", "direct"):
                latency[name] += await sequential_pass(arms[name], latency_repeats)
            say(
                f"P1 round {index + 1}/{rounds}: unloaded p50 gateway "
                f"{1000 * percentile(_latency_block(latency['gateway']), 50):.1f} ms, direct "
                f"{1000 * percentile(_latency_block(latency['direct']), 50):.1f} ms"
            )
        for name, arm in arms.items():
            gateway = two if name == "two_replicas" else one
            result = await run_window(
                name,
                _script_customer(arm, itertools.count(index * customers)),
                customers,
                window,
                ramp,
                cpu_pids=_pids(gateway if name != "direct" else None, cluster),
            )
            windows[name].append(result)
            say(
                f"P1/P5 round {index + 1}/{rounds} {name:12s} {result.rate:6.1f} turns/s "
                f"({customers} customers), machine busy {100 * result.cpu['machine_busy']:.0f}%"
            )
    throughput = {name: combine(ws) for name, ws in windows.items()}
    rate = {name: t["rate_per_s"] for name, t in throughput.items()}
    common = {"customers": customers, "window_s": window, "rounds": rounds}
    results: dict[str, dict[str, Any]] = {}
    if p1:
        lat = {name: _latency_block(samples) for name, samples in latency.items()}
        p50 = {name: percentile(values, 50) for name, values in lat.items()}
        results["p1"] = {
            "p1_latency_ratio": ratio(p50["gateway"], p50["direct"]),
            "p1_throughput_ratio": ratio(rate["gateway"], rate["direct"]),
            "latency_ms": {name: summary_ms(values) for name, values in lat.items()},
            "latency_p50_overhead_ms": round(1000 * (p50["gateway"] - p50["direct"]), 2),
            "latency_by_message_p50_ms": _by_message(latency),
            "latency_failed_turns": sum(1 for s in latency["gateway"] if not s.ok),
            "throughput": {k: v for k, v in throughput.items() if k in ("gateway", "direct")},
            **common,
            "scripts": SCRIPTS,
            "latency_samples_s": {name: [round(x, 6) for x in v] for name, v in lat.items()},
            "saturation_latency_samples_s": {
                name: [round(x, 6) for w in windows[name] for x in w.latencies()]
                for name in ("gateway", "direct")
            },
        }
    if two is not None:
        results["p5"] = {
            "p5_replica_speedup": ratio(rate["two_replicas"], rate["gateway"]),
            "arms": {
                "one_replica": throughput["gateway"],
                "two_replicas": throughput["two_replicas"],
            },
            **common,
            "replica_urls": two.rasa_urls,
        }
    created = {
        name: arm.sessions.created_on_demand
        for name, arm in arms.items()
        if isinstance(arm, GatewayArm)
    }
    for phase_result in results.values():
        phase_result["sessions_created_in_windows"] = created
    return results


def _by_message(latency: dict[str, list[Sample]]) -> dict[str, dict[str, float]]:
    """p50 per message text and arm, to show where the overhead goes."""
    texts = sorted({s.label for samples in latency.values() for s in samples})
    table: dict[str, dict[str, float]] = {}
    for text in texts:
        row = {}
        for name, samples in latency.items():
            values = [s.ended - s.started for s in samples if s.ok and s.label == text]
            row[name] = round(1000 * percentile(values, 50), 1)
        table[text] = row
    return table
