"""Three real ``aiosys worker`` processes on PostgreSQL share one hard budget: the calls
they make together never pass it (each reserves its worst case in the store first)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import budgetapp
import pytest
from workerprocs import spawn_worker, until_serving

from aiosys.models.links.metering import spent
from aiosys.store.base import TERMINAL

HERE = Path(__file__).parent
RUNS = 40


def spawn(store_url: str, out: Path) -> subprocess.Popen[bytes]:
    return spawn_worker("budgetapp:app", store_url, out, concurrency=20)


@pytest.mark.timeout(180)
async def test_three_worker_processes_never_pass_one_hard_budget(pg_url, tmp_path):
    out = tmp_path / "workers.log"
    app = budgetapp.app
    app.use_store(pg_url)
    await app.open()
    workers = [spawn(pg_url, out) for _ in range(3)]
    try:
        await until_serving(workers, out)  # three workers racing for the budget, not two
        runs = [await app.start("spend") for _ in range(RUNS)]
        async with asyncio.timeout(120):
            rows = []
            for run in runs:
                while (row := await run.row()).status not in TERMINAL:
                    assert all(w.poll() is None for w in workers), out.read_text()
                    await asyncio.sleep(0.05)
                rows.append(row)
        total = await spent(app.store, "default")
    finally:
        for w in workers:
            w.kill()
            w.wait()
        await app.close()
    made = [r for r in rows if r.status == "succeeded"]
    refused = [r for r in rows if r.status != "succeeded"]
    print(
        f"\n3 worker processes on PostgreSQL, {RUNS} calls of {budgetapp.PER_CALL} against a "
        f"hard limit of {budgetapp.LIMIT}: made={len(made)} spent={total:.4f}"
    )
    assert total <= budgetapp.LIMIT + 1e-9
    assert len(made) == int(budgetapp.LIMIT / budgetapp.PER_CALL + 1e-9)  # 12: all that fit
    assert total == pytest.approx(len(made) * budgetapp.PER_CALL)
    for row in refused:
        assert "BudgetExceeded" in json.loads(row.error or "{}").get("type", ""), row.error
