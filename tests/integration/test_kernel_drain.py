"""A real ``aiosys worker`` process drains on SIGTERM: it stops claiming, lets the step in
flight finish and be recorded, and exits 0; a second SIGTERM gives the run back at once,
and another worker finishes it."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest
from tests.integration.conftest import until

import aiosys
from aiosys import App

pytestmark = pytest.mark.timeout(90)

APP = """
import asyncio, os
from pathlib import Path
from aiosys import App, Context

app = App()
HERE = Path(os.environ["DRAIN_DIR"])

@app.step
async def slow(tag: str) -> str:
    (HERE / "started").touch()
    while not (HERE / "release").exists():
        await asyncio.sleep(0.01)
    return tag

@app.workflow
async def wf(ctx: Context, tag: str) -> str:
    return await slow(tag)

@app.step
def stuck_sync(tag: str) -> str:  # a sync step on a pool thread, stuck until released
    import time
    (HERE / "started").touch()
    while not (HERE / "release").exists():
        time.sleep(0.01)
    return tag

@app.workflow
async def wf_sync(ctx: Context, tag: str) -> str:
    return await stuck_sync(tag)
"""


class WorkerProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def line_with(self, text: str) -> str:
        """Read stderr until a line containing ``text``."""
        async with asyncio.timeout(30):
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                assert self.proc.stderr is not None
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError(f"worker exited without {text!r}:\n{self.text}")
                self.lines.append(raw.decode())

    async def exit_code(self) -> int:
        assert self.proc.stderr is not None
        async with asyncio.timeout(30):
            rest = await self.proc.stderr.read()
            self.lines.append(rest.decode())
            return await self.proc.wait()

    @property
    def text(self) -> str:
        return "".join(self.lines)


async def _worker(tmp_path: Path, module: str, store_url: str) -> WorkerProcess:
    env = dict(os.environ)
    env["DRAIN_DIR"] = str(tmp_path)
    env["PYTHONPATH"] = str(Path(aiosys.__file__).parents[1])
    env["AIOSYS_MODELS_DIR"] = ""
    args = ["-m", "aiosys.cli", "worker", "--app", f"{module}:app", "--store", store_url]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        "--grace",
        "60",
        "--lease",
        "2",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return WorkerProcess(proc)


def _load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, App]:
    """Write the app module; the same app imported here (for starting and finishing runs)."""
    module = f"drain_app_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{module}.py"
    path.write_text(APP)
    monkeypatch.setenv("DRAIN_DIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return module, mod.app


async def _until_file(path: Path) -> None:
    await until(path.exists, timeout=30)


async def test_sigterm_drains_the_worker_the_step_in_flight_finishes_and_it_exits_0(
    store_url, tmp_path, monkeypatch
):
    module, app = _load(tmp_path, monkeypatch)
    app.use_store(store_url)
    await app.open()
    try:
        run = await app.start("wf", {"tag": "t-1"})
        worker = await _worker(tmp_path, module, store_url)
        await _until_file(tmp_path / "started")
        worker.proc.send_signal(signal.SIGTERM)
        await worker.line_with("draining 1 run(s) in flight")
        (tmp_path / "release").touch()
        assert await worker.exit_code() == 0, worker.text
        row = await app.get_run(run.id)
        assert row.status == "succeeded", worker.text
        assert [e.status for e in await app.effects(run.id)] == ["ok"]
    finally:
        await app.close()
    assert "drained 1 run(s)" in worker.text
    assert "giving back" not in worker.text


async def test_a_second_sigterm_gives_the_run_back_and_another_worker_finishes_it(
    store_url, tmp_path, monkeypatch, wait_status
):
    module, app = _load(tmp_path, monkeypatch)
    app.use_store(store_url)
    await app.open()
    try:
        run = await app.start("wf", {"tag": "t-2"})
        worker = await _worker(tmp_path, module, store_url)
        await _until_file(tmp_path / "started")
        worker.proc.send_signal(signal.SIGTERM)
        await worker.line_with("draining 1 run(s) in flight")
        worker.proc.send_signal(signal.SIGTERM)
        assert await worker.exit_code() == 0, worker.text
        row = await app.get_run(run.id)
        assert row.status == "pending" and row.lease_owner is None, worker.text
    finally:
        await app.close()
    assert f"giving back 1 run(s) still in flight: {run.id}" in worker.text
    (tmp_path / "release").touch()
    async with app:
        assert (await wait_status(app, run.id, "succeeded")).result == '"t-2"'


async def test_a_forced_stop_does_not_wait_for_a_stuck_sync_step_thread(
    store_url, tmp_path, monkeypatch
):
    """A thread cannot be stopped and Python waits for pool threads at exit: the worker
    exits anyway once it has given the run back, and says so."""
    module, app = _load(tmp_path, monkeypatch)
    app.use_store(store_url)
    await app.open()
    try:
        run = await app.start("wf_sync", {"tag": "t-3"})
        worker = await _worker(tmp_path, module, store_url)
        await _until_file(tmp_path / "started")
        worker.proc.send_signal(signal.SIGTERM)
        await worker.line_with("draining 1 run(s) in flight")
        worker.proc.send_signal(signal.SIGTERM)
        assert await worker.exit_code() == 0, worker.text  # the thread still runs
        row = await app.get_run(run.id)
        assert row.status == "pending", worker.text
    finally:
        (tmp_path / "release").touch()
        await app.close()
    assert "1 sync step(s) still running on threads; exiting without waiting" in worker.text
