"""Running a worker as a child process and measuring it: wall time, CPU seconds, peak RSS.

The child is reaped with ``os.wait4``, which returns that one process's user and system CPU
seconds. Its ``ru_maxrss`` is no use here: on exec, Linux folds the high-water mark of the
forked copy of the *parent* into it, so every child of a harness holding a 20,000-row corpus
would "peak" at the harness's size. The peak RSS is instead the kernel's high-water mark of the
worker's own address space, ``VmHWM`` in ``/proc/<pid>/status``, read every 10 ms until the
process exits (it only grows, so sampling misses at most the last 10 ms).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.reference import Reference

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class WorkerCommand:
    """How to start one worker implementation."""

    name: str
    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str]

    def command(self, db_url: str, *options: str) -> list[str]:
        return [*self.argv, "vectorizer", "worker", "-d", db_url, *options]


def base_env() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PGAI_", "VECTORIZER_", "OPENAI_"))
    }
    env["OPENAI_API_KEY"] = "sk-bench-not-a-real-key"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ours() -> WorkerCommand:
    """Our worker: ``python -m pgai vectorizer worker`` with this interpreter."""
    return WorkerCommand("ours", (sys.executable, "-m", "pgai"), REPO, base_env())


def reference(ref: Reference) -> WorkerCommand:
    """The reference's ``pgai`` console script, run from its venv (never from the repository,
    where ``import pgai`` would find ours), with the offline tiktoken cache."""
    env = base_env()
    env["TIKTOKEN_CACHE_DIR"] = str(ref.tiktoken_cache)
    return WorkerCommand("reference", (str(ref.pgai),), ref.venv, env)


@dataclass
class Measured:
    """One finished worker process."""

    exit_code: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    log: Path
    started_monotonic: float

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class RunningWorker:
    """A started worker process; ``await finish()`` reaps it and returns the measurements."""

    def __init__(self, worker: WorkerCommand, args: list[str], log: Path) -> None:
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in finish()
        self.started = time.perf_counter()
        #: CLOCK_MONOTONIC is system-wide: comparable with the provider process's timestamps.
        self.started_monotonic = time.monotonic()
        self.process = subprocess.Popen(
            args,
            cwd=worker.cwd,
            env=worker.env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._reaped = asyncio.ensure_future(asyncio.to_thread(_reap, self.process.pid))

    def terminate(self) -> None:
        if not self._reaped.done():
            os.kill(self.process.pid, signal.SIGTERM)

    async def finish(self, time_limit: float | None = None) -> Measured:
        try:
            status, usage, peak_kb = await asyncio.wait_for(
                asyncio.shield(self._reaped), time_limit
            )
        except TimeoutError:
            os.kill(self.process.pid, signal.SIGKILL)
            status, usage, peak_kb = await self._reaped
        wall = time.perf_counter() - self.started
        # Popen must not try to reap the pid again.
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self._log_file.close()
        return Measured(
            exit_code=self.process.returncode,
            wall_seconds=wall,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            peak_rss_mb=peak_kb / 1024,
            log=self.log,
            started_monotonic=self.started_monotonic,
        )


def _high_water_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reap(pid: int) -> tuple[int, resource.struct_rusage, int]:
    """Wait for ``pid`` (a thread's job): its wait status, rusage and peak RSS in KB."""
    peak = 0
    while True:
        peak = max(peak, _high_water_kb(pid) or 0)
        reaped, status, usage = os.wait4(pid, os.WNOHANG)
        if reaped:
            return status, usage, peak
        time.sleep(0.01)


async def run_once(
    worker: WorkerCommand, db_url: str, options: list[str], log: Path, time_limit: float
) -> Measured:
    """``worker vectorizer worker -d URL --once OPTIONS``, to completion."""
    running = RunningWorker(worker, worker.command(db_url, "--once", *options), log)
    return await running.finish(time_limit)
