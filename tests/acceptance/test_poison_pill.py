"""A step that kills its worker process is not recovered forever: after its workflow's
``max_recoveries`` the run ends ``dead`` with the reason, and the step is not run again.
Real ``aiosys worker`` processes, restarted whenever one dies (as a supervisor would)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import poisonapp

from aiosys.store.base import TERMINAL

HERE = Path(__file__).parent
SRC = str(Path(poisonapp.__file__).resolve().parents[2] / "src")


def spawn(store_url: str, log: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AIOSYS_POISON_LOG": str(log),
        "PYTHONPATH": os.pathsep.join([SRC, str(HERE)]),
    }
    command = [sys.executable, "-m", "aiosys.cli", "worker", "--app", "poisonapp:app"]
    with out.open("ab") as sink:
        return subprocess.Popen(
            [*command, "--store", store_url, "--lease", "0.5"],
            cwd=HERE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def test_a_step_that_kills_its_worker_ends_dead_after_max_recoveries(store_url, tmp_path):
    log, out = tmp_path / "executions.log", tmp_path / "workers.log"
    app = poisonapp.app
    app.use_store(store_url)
    await app.open()
    worker = spawn(store_url, log, out)
    deaths = 0
    try:
        run = await app.start("poison")
        async with asyncio.timeout(90):
            while (row := await run.row()).status not in TERMINAL:
                if worker.poll() is not None:  # died: a supervisor starts another
                    deaths += 1
                    worker = spawn(store_url, log, out)
                await asyncio.sleep(0.05)
    finally:
        worker.kill()
        worker.wait()
        await app.close()
    error = json.loads(row.error or "{}")
    assert row.status == "dead", out.read_text()
    assert error["type"] == "aiosys.errors.MaxRecoveriesExceeded"
    assert "recovered 3 times" in error["message"] and "max_recoveries of 2" in error["message"]
    assert row.recoveries == 3
    # Executed once, then once per allowed recovery; never after the cap.
    assert len(log.read_text().split()) == 3
    assert deaths >= 3
