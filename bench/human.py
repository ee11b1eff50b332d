"""P3: delivery latency in human mode, customer -> agent console and agent -> customer.

Set-up, all over the real protocols: ``CONVERSATIONS`` widget customers say "I want a human";
the stub bot answers that with the handoff signal, so each conversation is QUEUED; the demo
agent signs in to the console, opens its websocket and claims every conversation over the
console API (ASSIGNED). Then an open-loop generator offers ``rate`` messages per second, half
of them customer messages (widget socket -> the agent's console socket), half agent replies
(``POST .../reply`` -> the customer's socket), round-robin over the conversations. Latency is
measured from the send (the frame, or the start of the POST) to the frame on the other side.
A message not delivered within the drain time counts at the drain deadline, so the reported
percentiles are then lower bounds (``lost`` says how many). A short run at a lower rate comes
first (``at_lower_rate`` in the details), to show the latency where the gateway keeps up.

The set-up takes one conversation after the other to ASSIGNED (handoff, then claim); the
time of each step is kept, because each queue change costs the gateway more than the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.clients import AgentConsole, create_session, open_widget, send_message
from bench.procs import Child, Children, CpuMeter
from bench.services import (
    AGENT_PASSWORD,
    AGENT_USER,
    Gateway,
    start_gateway,
    start_stub,
    stop_gateway,
)
from bench.stats import summary_ms

CONVERSATIONS = 100


class Tracker:
    """Send times of tagged messages and the times their frames arrived."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.arrived: dict[str, float] = {}

    def arrive(self, tag: str) -> None:
        if tag in self.sent and tag not in self.arrived:
            self.arrived[tag] = time.perf_counter()

    def latencies(self, tags: list[str], deadline: float) -> tuple[list[float], int]:
        """Latency of each tag (undelivered: deadline - send), and how many were lost."""
        values, lost = [], 0
        for tag in tags:
            if tag in self.arrived:
                values.append(self.arrived[tag] - self.sent[tag])
            else:
                lost += 1
                values.append(deadline - self.sent[tag])
        return values, lost


class HumanCustomer:
    """A widget customer whose socket reader records states and tagged agent messages."""

    def __init__(self, token: str, conversation_id: str, to_customer: Tracker) -> None:
        self.token, self.conversation_id = token, conversation_id
        self.to_customer = to_customer
        self.states: list[str] = []
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    async def connect(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.ws = await open_widget(http, base_url, self.token)
        self.reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            kind = frame.get("type")
            if kind == "message" and frame.get("sender") == "agent":
                self.to_customer.arrive(frame.get("text", ""))
            elif kind == "state":
                self.states.append(frame["state"])
                self.changed.set()

    async def wait_state(self, state: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while state not in self.states:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader


async def _console_reader(ws: aiohttp.ClientWebSocketResponse, to_agent: Tracker) -> None:
    async for msg in ws:
        if msg.type is not aiohttp.WSMsgType.TEXT:
            continue
        # Queue snapshots are large; only message events carry a tag.
        if not msg.data.startswith('{"type": "message"'):
            continue
        frame = json.loads(msg.data)
        message = frame.get("message") or {}
        if message.get("sender") == "customer":
            to_agent.arrive(message.get("text", ""))


async def _gather_limited(coros: list[Any], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


class HumanPhase:
    """P3 in two steps: ``setup()`` (slow, not measured; may overlap other work) and
    ``measure()`` (on a quiet machine); ``close()`` stops what it started."""

    def __init__(
        self,
        children: Children,
        run_dir: Path,
        say: Callable[[str], None],
        conversations: int = CONVERSATIONS,
    ) -> None:
        self.children, self.run_dir, self.say = children, run_dir, say
        self.conversations = conversations
        self.to_agent, self.to_customer = Tracker(), Tracker()
        self.customers: list[HumanCustomer] = []
        self.gateway: Gateway | None = None
        self.stub: Child | None = None
        self.agent: AgentConsole | None = None
        self.http: aiohttp.ClientSession | None = None
        self.console_task: asyncio.Task[None] | None = None
        self.setup_s: dict[str, float] = {}
        self.setup_evidence: dict[str, float] = {}

    async def setup(self) -> dict[str, Any]:
        """Stub bot, gateway, agent console, and every conversation QUEUED, then ASSIGNED."""
        self.stub, stub_url = await start_stub(self.children, "stub-p3")
        self.gateway = gateway = await start_gateway(
            self.children, "gateway-p3", [stub_url], self.run_dir
        )
        self.http = http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.agent = agent = AgentConsole(gateway.url)
        started = time.perf_counter()
        await agent.login(AGENT_USER, AGENT_PASSWORD)
        console = await agent.socket()
        self.console_task = asyncio.create_task(_console_reader(console, self.to_agent))
        sessions = await _gather_limited(
            [create_session(http, gateway.url) for _ in range(self.conversations)], 8
        )
        self.customers = [HumanCustomer(t, c, self.to_customer) for t, c in sessions]
        await _gather_limited([c.connect(http, gateway.url) for c in self.customers], 16)
        self.setup_s["sessions_s"] = round(time.perf_counter() - started, 2)

        # One conversation after the other (a few at a time): the customer asks for a person,
        # the conversation is QUEUED, the agent claims it (ASSIGNED). Every queue change makes
        # the gateway rebuild the whole queue view, so each step costs more than the last;
        # the per-step times are kept as evidence.
        mark = time.perf_counter()
        done = 0

        async def to_assigned(customer: HumanCustomer) -> tuple[float, float]:
            nonlocal done
            assert customer.ws is not None
            asked = time.perf_counter()
            await send_message(customer.ws, "I want a human")
            if not await customer.wait_state("queued", 120):
                raise RuntimeError(f"conversation {customer.conversation_id} was not queued")
            queued = time.perf_counter()
            status, body = await agent.api(
                "POST", f"/conversations/{customer.conversation_id}/claim"
            )
            if status != 200:
                raise RuntimeError(f"claim failed: HTTP {status} {body}")
            if not await customer.wait_state("assigned", 120):
                raise RuntimeError(f"conversation {customer.conversation_id} was not assigned")
            done += 1
            if done % 25 == 0:
                self.say(f"P3 {done}/{self.conversations} conversations assigned")
            return queued - asked, time.perf_counter() - queued

        steps = await _gather_limited([to_assigned(c) for c in self.customers], 4)
        self.setup_s["handoffs_and_claims_s"] = round(time.perf_counter() - mark, 2)
        tenth = max(1, len(steps) // 10)
        self.setup_evidence = {
            "handoff_s_first_tenth": round(sum(h for h, _ in steps[:tenth]) / tenth, 3),
            "handoff_s_last_tenth": round(sum(h for h, _ in steps[-tenth:]) / tenth, 3),
            "claim_s_first_tenth": round(sum(c for _, c in steps[:tenth]) / tenth, 3),
            "claim_s_last_tenth": round(sum(c for _, c in steps[-tenth:]) / tenth, 3),
        }
        self.say(
            f"P3 {self.conversations} conversations assigned in "
            f"{self.setup_s['handoffs_and_claims_s']} s (claim: "
            f"{self.setup_evidence['claim_s_first_tenth']} s each at first, "
            f"{self.setup_evidence['claim_s_last_tenth']} s at the end)"
        )
        return dict(self.setup_s)

    async def measure(
        self,
        *,
        rate: float = 200.0,
        duration: float = 15.0,
        low_rate: float = 40.0,
        low_duration: float = 6.0,
    ) -> dict[str, Any]:
        """A short run at ``low_rate`` (where the gateway is not saturated), then the
        measured run at ``rate``."""
        if self.gateway is None or self.stub is None or self.agent is None:
            raise RuntimeError("P3 set-up did not finish")
        pids = (self.gateway.child.pid, self.stub.pid)
        low = await _load(
            self.agent, self.customers, self.to_agent, self.to_customer, *pids,
            label="low", rate=low_rate, duration=low_duration, warmup=1.0, drain=5.0,
            say=self.say,
        )  # fmt: skip
        result = await _load(
            self.agent, self.customers, self.to_agent, self.to_customer, *pids,
            label="main", rate=rate, duration=duration, warmup=2.0, drain=10.0, say=self.say,
        )  # fmt: skip
        samples = {f"{d} at {rate:g}/s": v for d, v in result["latency_samples_s"].items()}
        for direction, values in low.pop("latency_samples_s").items():
            samples[f"{direction} at {low_rate:g}/s"] = values
        result["latency_samples_s"] = samples
        result["at_lower_rate"] = low
        result["setup_s"] = dict(self.setup_s)
        result["setup_evidence"] = dict(self.setup_evidence)
        return result

    async def close(self) -> None:
        # The gateway goes first: a saturated one would make every client close wait.
        if self.gateway is not None:
            stop_gateway(self.children, self.gateway, grace=2.0)
        for customer in self.customers:
            await customer.close()
        if self.console_task is not None:
            self.console_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.console_task
        if self.agent is not None:
            await self.agent.close()
        if self.http is not None:
            await self.http.close()
        if self.stub is not None:
            self.children.stop(self.stub)


async def _load(
    agent: AgentConsole,
    customers: list[HumanCustomer],
    to_agent: Tracker,
    to_customer: Tracker,
    gateway_pid: int,
    stub_pid: int,
    *,
    label: str,
    rate: float,
    duration: float,
    warmup: float,
    drain: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Offer ``rate`` messages/s for ``duration`` s, alternating directions."""
    posts: set[asyncio.Task[None]] = set()
    http_errors: list[str] = []

    async def reply(conversation_id: str, tag: str) -> None:
        to_customer.sent[tag] = time.perf_counter()
        try:
            status, _ = await agent.api(
                "POST", f"/conversations/{conversation_id}/reply", {"text": tag}
            )
            if status != 200:
                http_errors.append(f"HTTP {status}")
        except aiohttp.ClientError as exc:
            http_errors.append(str(exc))

    c2a_tags: list[str] = []
    a2c_tags: list[str] = []
    meter = CpuMeter({"gateway": gateway_pid, "stub": stub_pid, "loadgen": os.getpid()})
    start = time.perf_counter()
    measured_from = start + warmup
    total = int(rate * duration)
    say(f"P3 offering {rate:.0f} msg/s for {duration:.0f} s over {len(customers)} conversations")
    for index in range(total):
        due = start + index / rate
        # Behind schedule the loop still yields, so replies in flight and readers get turns.
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        if index == int(rate * warmup):
            meter.start()
        customer = customers[(index // 2) % len(customers)]
        measured = due >= measured_from
        if index % 2 == 0:
            tag = f"{label}-c2a-{index}"
            assert customer.ws is not None
            to_agent.sent[tag] = time.perf_counter()
            await send_message(customer.ws, tag)
            if measured:
                c2a_tags.append(tag)
        else:
            tag = f"{label}-a2c-{index}"
            task = asyncio.create_task(reply(customer.conversation_id, tag))
            posts.add(task)
            task.add_done_callback(posts.discard)
            if measured:
                a2c_tags.append(tag)
    send_end = time.perf_counter()
    cpu = meter.stop()
    achieved = (total - int(rate * warmup)) / max(send_end - measured_from, 1e-9)
    deadline = time.perf_counter() + drain
    while time.perf_counter() < deadline:
        if all(t in to_agent.arrived for t in c2a_tags) and all(
            t in to_customer.arrived for t in a2c_tags
        ):
            break
        await asyncio.sleep(0.05)
    deadline = min(deadline, time.perf_counter())
    for task in list(posts):
        task.cancel()
    c2a, c2a_lost = to_agent.latencies(c2a_tags, deadline)
    a2c, a2c_lost = to_customer.latencies(a2c_tags, deadline)
    c2a_summary, a2c_summary = summary_ms(c2a), summary_ms(a2c)
    both = summary_ms(c2a + a2c)
    say(
        f"P3 {rate:.0f} msg/s: customer->agent p50/p95/p99 {_three(c2a_summary)} ms, "
        f"agent->customer {_three(a2c_summary)} ms, lost {c2a_lost}+{a2c_lost}"
    )
    messages = len(c2a_tags) + len(a2c_tags)
    return {
        "p3_p99_ms": max(float(c2a_summary.get("p99", 0)), float(a2c_summary.get("p99", 0))),
        "customer_to_agent_ms": c2a_summary,
        "agent_to_customer_ms": a2c_summary,
        "both_ms": both,
        "lost": {"customer_to_agent": c2a_lost, "agent_to_customer": a2c_lost},
        "percentiles_are_lower_bounds": bool(c2a_lost or a2c_lost),
        "offered_rate_per_s": rate,
        "send_rate_achieved_per_s": round(achieved, 1),
        "duration_s": duration,
        "warmup_s": warmup,
        "conversations": len(customers),
        "reply_http_errors": len(http_errors),
        "cpu": cpu,
        # Gateway CPU while sending over the messages sent meanwhile: the cost per message
        # when it keeps up; when saturated, cpu["gateway_cpu_s"] / wall_s shows the cores.
        "gateway_cpu_ms_per_msg": round(1000 * cpu["gateway_cpu_s"] / messages, 3)
        if messages
        else None,
        "latency_samples_s": {
            "customer_to_agent": [round(x, 6) for x in c2a],
            "agent_to_customer": [round(x, 6) for x in a2c],
        },
    }


def _three(summary: dict[str, float | int]) -> str:
    return "/".join(str(summary.get(k, "-")) for k in ("p50", "p95", "p99"))
