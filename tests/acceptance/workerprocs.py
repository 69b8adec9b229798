"""Real ``aiosys worker`` processes for the acceptance tests: started, SIGKILLed, reaped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).parent
AIOSYS = str(Path(sys.executable).with_name("aiosys"))  # the console script of this venv


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)
    ready_at: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ready(self) -> bool:
        """Whether the worker has started serving (it says so on stderr)."""
        if self.ready_at is None and "serving queues" in self.log.read_text(errors="replace"):
            self.ready_at = time.monotonic()
        return self.ready_at is not None


class Workers:
    """``aiosys worker --app APP`` processes on one store (``crashapp:app`` unless told)."""

    def __init__(
        self,
        store_url: str,
        log_dir: Path,
        *,
        concurrency: int,
        lease: float,
        env: dict[str, str],
        app: str = "crashapp:app",
    ) -> None:
        self.app = app
        self.store_url = store_url
        self.log_dir = log_dir
        self.concurrency = concurrency
        self.lease = lease
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.alive: list[WorkerProc] = []
        self.killed: list[WorkerProc] = []
        self.by_pid: dict[int, WorkerProc] = {}
        self.spawned = 0

    def spawn(self) -> WorkerProc:
        self.spawned += 1
        log = self.log_dir / f"worker-{self.spawned}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    AIOSYS,
                    "worker",
                    "--app",
                    self.app,
                    "--store",
                    self.store_url,
                    "--concurrency",
                    str(self.concurrency),
                    "--lease",
                    str(self.lease),
                ],
                cwd=HERE,  # `aiosys worker` imports the app from the current directory
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        w = WorkerProc(proc, log)
        self.alive.append(w)
        self.by_pid[w.pid] = w
        return w

    def kill(self, w: WorkerProc) -> None:
        """SIGKILL: no shutdown code runs, leases are left to expire."""
        w.proc.send_signal(signal.SIGKILL)
        w.proc.wait(timeout=10)
        self.alive.remove(w)
        self.killed.append(w)

    def kill_all(self) -> None:
        for w in list(self.alive):
            self.kill(w)

    @property
    def killed_pids(self) -> set[int]:
        return {w.pid for w in self.killed}

    def check_alive(self) -> None:
        """Fail if a worker exited by itself (it crashed: show why)."""
        for w in self.alive:
            if w.proc.poll() is not None:
                tail = w.log.read_text(errors="replace")[-3000:]
                pytest.fail(f"worker pid {w.pid} exited with {w.proc.returncode}:\n{tail}")

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await poll_until(lambda: _all_ready(self), timeout, "workers to start serving")

    def close(self) -> None:
        for w in list(self.alive):
            if w.proc.poll() is None:
                w.proc.kill()
            try:
                w.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
                pass
        self.alive.clear()


async def _all_ready(workers: Workers) -> bool:
    workers.check_alive()
    return all(w.ready() for w in workers.alive)


async def poll_until(
    cond: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.05
) -> None:
    """Check ``cond`` every ``every`` seconds until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


def spawn_worker(
    app_ref: str, store_url: str, out: Path, *, concurrency: int
) -> subprocess.Popen[bytes]:
    """One ``aiosys worker --app APP_REF`` process on ``store_url`` (this checkout's ``src``
    and the acceptance apps importable), its stdout and stderr appended to ``out``."""
    src = str(HERE.parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, str(HERE)])}
    command = [sys.executable, "-m", "aiosys.cli", "worker", "--app", app_ref]
    with out.open("ab") as sink:
        return subprocess.Popen(
            [*command, "--store", store_url, "--concurrency", str(concurrency)],
            cwd=HERE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def until_serving(workers: list[subprocess.Popen[bytes]], out: Path) -> None:
    """Until every worker of ``workers`` (their output all in ``out``) serves its queues: a
    test of several workers at once means all of them (one still starting up also takes a
    SIGTERM before it has its handler, and dies of it)."""
    async with asyncio.timeout(120):
        while _log(out).count("serving queues") < len(workers):
            assert all(w.poll() is None for w in workers), _log(out)
            await asyncio.sleep(0.05)


def _log(out: Path) -> str:
    return out.read_text()
