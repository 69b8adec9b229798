"""Three real ``aiosys worker`` processes on PostgreSQL, 64 runs in flight each, append to
one audit chain: it verifies whole, with every start and every step in it once."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections import Counter
from pathlib import Path

import auditapp
import pytest
from workerprocs import spawn_worker, until_serving

from aiosys.store.base import TERMINAL

HERE = Path(__file__).parent
RUNS = 300


def spawn(store_url: str, out: Path) -> subprocess.Popen[bytes]:
    return spawn_worker("auditapp:app", store_url, out, concurrency=64)


@pytest.mark.timeout(240)
async def test_three_worker_processes_append_one_unbroken_audit_chain(pg_url, tmp_path):
    out = tmp_path / "workers.log"
    app = auditapp.app
    app.use_store(pg_url)
    await app.open()
    workers = [spawn(pg_url, out) for _ in range(3)]
    try:
        # All three serving before the runs start: else the first two can finish every run
        # while the third still starts up (a fresh checkout's first, slower imports did),
        # and it takes the SIGTERM below before it has its handler: exit -15.
        await until_serving(workers, out)
        runs = await asyncio.gather(*(app.start("five", {"x": i}) for i in range(RUNS)))
        async with asyncio.timeout(180):
            for run in runs:
                while (await run.row()).status not in TERMINAL:
                    assert all(w.poll() is None for w in workers), out.read_text()
                    await asyncio.sleep(0.05)
        rows = [await run.row() for run in runs]
        for w in workers:  # drained: each signs what it appended on its way out
            w.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(timeout=60) == 0, out.read_text()
        report = await app.audit.verify()
        pages = await app.store.fetch("audit_page", {"after": 0, "upto": 10**9, "limit": 10**6})
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
        await app.close()
    assert {r.status for r in rows} == {"succeeded"}
    assert report.ok, report.line()
    bodies = [json.loads(p["body"]) for p in pages]
    actions = Counter(b["action"] for b in bodies)
    assert actions == {"start_workflow": RUNS, "step": RUNS * 5}
    steps = Counter((b["run_id"], b["effect_seq"]) for b in bodies if b["action"] == "step")
    assert len(steps) == RUNS * 5 and set(steps.values()) == {1}  # each step once
    print(f"\n3 workers on PostgreSQL: {report.line()}")
