"""The servers under test: the gateway, the stub bot, the reference relay/echo, and Rasa.

Each runs as its own process (``.venv`` for ours, ``.venv-rasa`` for Rasa), so its CPU is
separate from the load generator's and can be read from /proc.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

from bench.procs import (
    ROOT,
    VENV_PYTHON,
    BenchError,
    Child,
    Children,
    process_cpu_seconds,
    wait_http,
)
from scripts import devctl

RASA_TOKEN = "bench-token"
AGENT_USER = "demo"
AGENT_PASSWORD = "bench-agent-password"


@dataclass
class Gateway:
    """A running ``python -m bot serve`` process."""

    child: Child
    url: str
    rasa_urls: list[str]
    database: Path
    profiler: Child | None = None


def _gateway_files(run_dir: Path, name: str, rasa_urls: list[str]) -> tuple[Path, Path]:
    """A fresh database path, and gateway.yml as shipped with this run's Rasa replicas."""
    database = run_dir / f"{name}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    raw = yaml.safe_load((ROOT / "gateway.yml").read_text())
    # The load comes from one address on purpose: the web chat's abuse limits would cap it.
    raw["limits"].update(
        sessions_per_minute_per_address=10**9,
        messages_per_minute_per_conversation=10**9,
        sockets_per_visitor=10**6,
    )
    if len(rasa_urls) > 1:
        raw["rasa"]["urls"] = rasa_urls
    config = run_dir / f"{name}.yml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return database, config


async def start_gateway(
    children: Children, name: str, rasa_urls: list[str], run_dir: Path
) -> Gateway:
    """The gateway as a subprocess on a free port with a fresh SQLite file.

    Configured like production (gateway.yml: INFO logs, access log, in-process broker) through
    GATEWAY_SECRET_KEY, RASA_URL, RASA_TOKEN and DATABASE_URL.
    """
    port = devctl.free_port()
    database, config = _gateway_files(run_dir, name, rasa_urls)
    env = {
        "GATEWAY_SECRET_KEY": secrets.token_urlsafe(32),
        "RASA_URL": rasa_urls[0],
        "RASA_TOKEN": RASA_TOKEN,
        "DATABASE_URL": f"sqlite:///{database}",
        "DEMO_AGENT_PASSWORD": AGENT_PASSWORD,
        "TELEGRAM_BOT_TOKEN": "",
        "SLACK_BOT_TOKEN": "",
        "REDIS_URL": "",
    }
    child = children.python(
        name, "bot", "--config", str(config), "serve", "--port", str(port), env=env
    )
    url = f"http://127.0.0.1:{port}"
    await wait_http(f"{url}/healthz", child, timeout=60, what=f"the gateway {name}")
    profiler = None
    if children.profile_dir is not None:
        # Samples only while a thread holds the GIL: Python CPU, not idle waiting.
        children.profile_dir.mkdir(parents=True, exist_ok=True)
        profiler = children.spawn(
            f"py-spy-{name}",
            [
                str(VENV_PYTHON.parent / "py-spy"),
                "record",
                "--pid",
                str(child.pid),
                "--rate",
                "100",
                "--gil",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(children.profile_dir / f"{name}.txt"),
            ],
        )
    return Gateway(child, url, rasa_urls, database, profiler)


def stop_gateway(children: Children, gateway: Gateway, grace: float = 5.0) -> None:
    """Stop the gateway; its profiler (if any) then writes its file and exits by itself."""
    children.stop(gateway.child, grace=grace)
    if gateway.profiler is not None:
        try:
            gateway.profiler.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            gateway.profiler.proc.send_signal(signal.SIGINT)
        children.stop(gateway.profiler, grace=10)


async def start_stub(children: Children, name: str = "stub") -> tuple[Child, str]:
    port = devctl.free_port()
    child = children.python(name, "bench.stub", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    await wait_http(f"{url}/status", child, timeout=30, what="the stub bot")
    return child, url


async def start_reference(
    children: Children, mode: str, upstream: str | None = None
) -> tuple[Child, str]:
    """The bare relay (``mode="relay"``) or the echo server (``mode="echo"``)."""
    port = devctl.free_port()
    args = ["--mode", mode, "--port", str(port)]
    if upstream:
        args += ["--upstream", upstream]
    child = children.python(mode, "bench.relay", *args)
    url = f"http://127.0.0.1:{port}"
    await wait_http(f"{url}/healthz", child, timeout=30, what=f"the {mode} server")
    return child, url


class _LaunchOnlyStack(devctl.Stack):
    """devctl.Stack whose start() only spawns; readiness is awaited asynchronously here."""

    def wait_ready(self, timeout: float) -> None:
        return None


class RasaCluster:
    """One action server and ``replicas`` Rasa servers for the same model (devctl.Stack)."""

    def __init__(self, model: Path, replicas: int, log_dir: Path) -> None:
        self.model, self.log_dir = model, log_dir
        self.stack = _LaunchOnlyStack(
            model, devctl.free_port(), devctl.free_port(), RASA_TOKEN, log_dir
        )
        self.ports = [self.stack.rasa_port] + [devctl.free_port() for _ in range(replicas - 1)]
        self.started_at = 0.0
        self.ready_seconds = 0.0

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def launch(self) -> None:
        """Seed the demo backend, spawn the action server and every Rasa replica."""
        os.environ["BRIGHTLINE_BACKEND_DB"] = str(self.log_dir / "backend.sqlite3")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        devctl.seed_backend()
        self.started_at = time.monotonic()
        self.stack.start()  # actions + the first replica; writes the endpoints file
        for index, port in enumerate(self.ports[1:], start=2):
            self.stack.spawn_rasa(f"rasa{index}", port)

    async def wait_ready(self, timeout: float = 300.0) -> float:
        """Wait until the action server and every replica has loaded the model."""
        pending = {"actions": f"http://127.0.0.1:{self.stack.actions_port}/health"}
        for url in self.urls:
            pending[url] = f"{url}/status?token={RASA_TOKEN}"
        async with aiohttp.ClientSession() as http:
            while pending:
                for name, proc in self.stack.procs:
                    if proc.poll() is not None:
                        log = self.log_dir / f"{name}.log"
                        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                        raise BenchError(f"{name} exited with {proc.returncode}:\n{tail}")
                for name, url in list(pending.items()):
                    try:
                        async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                            body = await r.json(content_type=None)
                        if r.status == 200 and (name == "actions" or body.get("model_file")):
                            del pending[name]
                    except (aiohttp.ClientError, TimeoutError, ValueError):
                        pass
                if time.monotonic() - self.started_at > timeout:
                    raise BenchError(f"not ready after {timeout:.0f} s: {', '.join(pending)}")
                await asyncio.sleep(0.5)
        self.ready_seconds = time.monotonic() - self.started_at
        return self.ready_seconds

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each process of the stack (actions, rasa, rasa2...)."""
        return {name: process_cpu_seconds(proc.pid) for name, proc in self.stack.procs}

    def stop(self) -> None:
        self.stack.stop()
