"""A worker process SIGKILLed while it runs a run: the worker that recovers the run logs one
``run.recovered`` line naming the lost worker and when its lease expired, and ``runs show``
says which worker ran each attempt and shows the lease expiry as a gap (table and --json).
Both workers are real ``aiosys worker`` processes, on both stores."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import crashapp
import pytest
from tests.unit.clirunner import aiosys, ok
from workerprocs import Workers, poll_until

pytestmark = pytest.mark.timeout(120)

LEASE = 1.0


def worker_id(log: str) -> str:
    """The id a worker announces in its first line ("worker <id> serving queues ...")."""
    found = re.search(r"worker (\S+) serving queues", log)
    assert found, log
    return found.group(1)


async def test_a_killed_workers_run_is_logged_recovered_and_shown_with_its_gap(
    store_url: str, crash_log: Path, workers_factory: Callable[..., Workers]
) -> None:
    app = await crashapp.build(store_url).open()
    pool = workers_factory(store_url, concurrency=2, lease=LEASE)
    marker = crash_log.with_suffix(".held")
    try:
        lost = pool.spawn()
        await pool.wait_ready()
        run = await app.start("handover")
        await poll_until(lambda: _exists(marker), 30, "the first worker to block in hold_once")
        pool.kill(lost)  # SIGKILL while it runs effect 2: its lease is left to expire
        rescuer = pool.spawn()
        await pool.wait_ready()
        async with asyncio.timeout(60):
            assert await app.handle(run.id).result() == 2
        lost_id, rescuer_id = worker_id(lost.log.read_text()), worker_id(rescuer.log.read_text())
        assert f":{lost.pid}:" in lost_id and f":{rescuer.pid}:" in rescuer_id
        recoveries = await app.store.list_recoveries(run.id)
        effects = await app.effects(run.id)
    finally:
        pool.close()
        await app.close()

    # The rescuer's log: one run.recovered line (WARNING) naming both workers.
    lines = [ln for ln in rescuer.log.read_text().splitlines() if "run.recovered" in ln]
    assert len(lines) == 1, rescuer.log.read_text()
    (line,) = lines
    assert f"run.recovered run={run.id} workflow=handover@1 worker={rescuer_id}" in line
    assert f"lost_by={lost_id}" in line and "recoveries=1" in line
    expired = re.search(r"lease_expired_at=(\S+)", line)
    assert expired is not None
    (recovery,) = recoveries
    assert (recovery.epoch, recovery.worker, recovery.recovered_from) == (2, rescuer_id, lost_id)
    assert datetime.fromisoformat(expired.group(1)).timestamp() == pytest.approx(
        recovery.lease_expired_at, abs=1e-3
    )
    assert [(e.seq, e.epoch, e.worker) for e in effects] == [
        (1, 1, lost_id),
        (2, 2, rescuer_id),
        (3, 2, rescuer_id),
    ]

    print(ok(await asyncio.to_thread(aiosys, "runs", "show", run.id, "--store", store_url)).stdout)
    print(line)
    shown = json.loads(
        (
            await asyncio.to_thread(aiosys, "runs", "show", run.id, "--json", "--store", store_url)
        ).stdout
    )
    first, second = shown["attempts"]
    assert (first["attempt"], first["worker"], first["effects"]) == (1, lost_id, [1])
    assert first["gap_before"] is None and first["claimed_at"] is None  # kept for recoveries
    assert (second["attempt"], second["worker"], second["effects"]) == (2, rescuer_id, [2, 3])
    gap = second["gap_before"]
    assert (gap["kind"], gap["worker"], gap["recovered_by"]) == (
        "lease_expired",
        lost_id,
        rescuer_id,
    )
    last_seen = datetime.fromisoformat(gap["last_seen_at"])
    lease_expired = datetime.fromisoformat(gap["lease_expired_at"])
    recovered = datetime.fromisoformat(gap["recovered_at"])
    assert last_seen < lease_expired <= recovered
    assert second["claimed_at"] == gap["recovered_at"]
    assert gap["gap_s"] == pytest.approx((recovered - last_seen).total_seconds(), abs=1e-3)
    assert [(e["seq"], e["run_attempt"], e["worker"]) for e in shown["effects"]] == [
        (1, 1, lost_id),
        (2, 2, rescuer_id),
        (3, 2, rescuer_id),
    ]

    text = ok(await asyncio.to_thread(aiosys, "runs", "show", run.id, "--store", store_url)).stdout
    assert "attempts" in text and lost_id in text and rescuer_id in text
    assert f"recovered from {lost_id}" in text
    [gap_line] = [ln for ln in text.splitlines() if " gap " in ln]
    assert "lease expired" in gap_line
    # the gap sits between effect 1 (the lost worker's) and effect 2 (the rescuer's)
    rows = [ln for ln in text.splitlines() if re.match(r"\W*#\d", ln)]
    assert [re.findall(r"#(\d)", r)[0] for r in rows][-4:] == ["1", "2", "2", "2"]
    assert " gap " in rows[-3]


async def _exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)
