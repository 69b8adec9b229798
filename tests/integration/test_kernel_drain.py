"""A real ``aiosys worker`` process drains on SIGTERM: it stops claiming, lets the step in
flight finish and be recorded, and exits 0; a second SIGTERM gives the run back at once,
and another worker finishes it."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest
from tests.integration.conftest import until
from tests.integration.procs import Proc, load_app_module, process_env

pytestmark = pytest.mark.timeout(90)


async def _worker(tmp_path: Path, module: str, store_url: str) -> Proc:
    env = process_env(tmp_path)
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
    return Proc(proc)


async def _until_file(path: Path) -> None:
    await until(path.exists, timeout=30)


async def test_sigterm_drains_the_worker_the_step_in_flight_finishes_and_it_exits_0(
    store_url, tmp_path, monkeypatch
):
    module, app = load_app_module(tmp_path, monkeypatch)
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
    module, app = load_app_module(tmp_path, monkeypatch)
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
    module, app = load_app_module(tmp_path, monkeypatch)
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
