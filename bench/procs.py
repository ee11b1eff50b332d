"""Child processes of the benchmark: spawn, wait until they answer, measure, and stop them.

Every process the benchmark starts is registered in a :class:`Children` registry and runs in
its own session (process group), so one ``stop_all()`` in a ``finally`` block ends all of them,
also after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A benchmark step failed; the phase records the message and the run goes on."""


def raise_nofile_limit() -> int:
    """Raise this process's open-files limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _child_setup() -> None:  # runs in the child between fork and exec
    raise_nofile_limit()


@dataclass
class Child:
    """One running child process and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kb(self) -> int:
        """Resident set size in KiB (VmRSS in /proc/<pid>/status)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise BenchError(f"no VmRSS for {self.name} (pid {self.pid})")

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far (from /proc/<pid>/stat)."""
        return process_cpu_seconds(self.pid)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process; 0.0 when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may contain spaces; the fields after it are fixed.
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Children:
    """Registry of everything the benchmark started."""

    def __init__(self, log_dir: Path, profile_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self.profile_dir = profile_dir  # py-spy profiles of every gateway, when set
        self.items: list[Child] = []

    def spawn(
        self,
        name: str,
        cmd: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> Child:
        """Start ``cmd`` in its own process group, output to ``<log_dir>/<name>.log``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        out = log.open("wb")
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=_child_setup,
        )
        child = Child(name, proc, log, out)
        self.items.append(child)
        return child

    def python(
        self, name: str, module: str, *args: str, env: dict[str, str] | None = None
    ) -> Child:
        """``.venv/bin/python -m module args`` as a child."""
        return self.spawn(name, [str(VENV_PYTHON), "-m", module, *args], env=env)

    def stop(self, child: Child, grace: float = 5.0) -> None:
        """SIGTERM the child's process group, SIGKILL after ``grace`` seconds."""
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.proc.wait()
        if child._log_file is not None:
            child._log_file.close()
            child._log_file = None
        if child in self.items:
            self.items.remove(child)

    def stop_all(self) -> None:
        for child in list(reversed(self.items)):
            self.stop(child, grace=3.0)


async def wait_http(
    url: str, child: Child | None = None, timeout: float = 60.0, what: str = ""
) -> float:
    """Poll ``url`` until it answers 2xx; returns the seconds it took. Fails fast if the
    child exits meanwhile."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while True:
            if child is not None and not child.alive():
                raise BenchError(
                    f"{child.name} exited with {child.proc.returncode} while starting:\n"
                    f"{child.log_tail()}"
                )
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status < 300:
                        return time.monotonic() - started
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() - started > timeout:
                raise BenchError(f"{what or url} did not answer within {timeout:.0f} s")
            await asyncio.sleep(0.2)


def python_version(exe: Path) -> str:
    """``X.Y.Z`` of an interpreter, or "missing"."""
    try:
        out = subprocess.run(
            [str(exe), "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "missing"
    return out.stdout.strip()


def git_state() -> dict[str, object]:
    """The commit measured, and which files of the gateway differ from it (others may be
    editing the work tree while a benchmark runs)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    # Not stripped before splitting: a porcelain line starts with a two-letter status that may
    # begin with a space (" M bot/store.py").
    dirty = git("status", "--porcelain", "--", "bot", "connectors", "handoff", "gateway.yml")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or "unknown",
        "subject": git("log", "-1", "--format=%s").strip()[:120],
        "gateway_files_changed": [line[3:] for line in dirty.splitlines() if line.strip()],
    }


def machine_info() -> dict[str, object]:
    """nproc, memory, load and interpreter versions, for the results file."""
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python_gateway": sys.version.split()[0],
        "python_rasa": python_version(ROOT / ".venv-rasa" / "bin" / "python"),
        "kernel": os.uname().release,
    }


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


class CpuMeter:
    """CPU seconds used by named processes, and how busy the whole machine was, in a window."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self._machine: tuple[int, int] = (0, 0)
        self._wall = 0.0

    def start(self) -> CpuMeter:
        self._start = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine = _machine_ticks()
        self._wall = time.monotonic()
        return self

    def stop(self) -> dict[str, float]:
        """{"<name>_cpu_s": ..., "machine_busy": fraction of all cores, "wall_s": ...}."""
        wall = time.monotonic() - self._wall
        busy, total = _machine_ticks()
        result = {
            f"{name}_cpu_s": round(process_cpu_seconds(pid) - self._start[name], 3)
            for name, pid in self.pids.items()
        }
        result["machine_busy"] = round(
            (busy - self._machine[0]) / max(1, total - self._machine[1]), 3
        )
        result["wall_s"] = round(wall, 3)
        return result
