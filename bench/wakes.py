#!/usr/bin/env python
"""Wake-ups: how late a durable timer ends, how fast a signal from another process lands, and
whether a wake-up costs more CPU as a run's history grows.

Three figures, on SQLite (WAL, synchronous=FULL) and on PostgreSQL, each store a fresh
database:

- **timer overshoot**: a run sleeps ``--sleep`` seconds ``--timers`` times in a row, a step
  taking the wall clock before and after each sleep; overshoot = the time between the two
  steps minus the sleep (it includes recording the step before and running the one after:
  what a workflow sees). p50 / p99, milliseconds. In the process that holds the run.
- **cross-process signal**: a worker runs in a child process; this process (no worker) sends
  ``--signals`` signals one after another to a run parked on ``ctx.wait_for``, each carrying
  the time it was sent; a step of the run returns ``time.time() - sent`` (one host clock).
  p50 / p99, milliseconds.
- **CPU per wake, effect 100 vs 2,000**: a run makes 2,000 effects with a signal wait every
  10 (embedded worker, this process); the process CPU of each wake (signal sent -> the next
  nine steps recorded) around effect 100 and around effect 2,000, and their ratio. A worker
  that replayed the history on every wake would spend ~20x more at effect 2,000.

    .venv/bin/python bench/wakes.py
    .venv/bin/python bench/wakes.py --only sqlite --timers 200

``bench/kernel.py`` runs this after its throughput cells (``--skip-wakes`` to leave it out).
Results are printed and written to bench/results/wakes-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiosys import App, Context

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

WORKER_SCRIPT = """
import asyncio, sys
sys.path.insert(0, {bench!r})
import wakes
app = wakes.build_app({url!r})
async def main():
    async with app:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


def build_app(url: str) -> Any:
    app = App(store=url, lease=10.0)

    @app.step
    async def clock() -> float:
        return time.time()

    @app.step
    async def latency(sent: float) -> float:
        return time.time() - sent

    @app.step
    async def bump(x: int) -> int:
        return x + 1

    @app.workflow
    async def napper(ctx: Context, times: int, seconds: float) -> list[float]:
        late = []
        for _ in range(times):
            before = await clock()
            await ctx.sleep(seconds)
            after = await clock()
            late.append(after - before - seconds)
        return late

    @app.workflow
    async def listener(ctx: Context, times: int) -> list[float]:
        seen = []
        for _ in range(times):
            sent = await ctx.wait_for("ping")
            seen.append(await latency(sent))
        return seen

    @app.workflow
    async def long_history(ctx: Context, effects: int) -> int:
        x = 0
        for _ in range(effects // 10):
            await ctx.wait_for("next")
            for _ in range(9):
                x = await bump(x)
        return x

    return app


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timers(url: str, n: int, seconds: float) -> dict[str, float]:
    app = build_app(url)
    async with app:
        late = await app.run("napper", {"times": n, "seconds": seconds})
    ms = [x * 1000 for x in late]
    return {"p50_ms": statistics.median(ms), "p99_ms": pct(ms, 0.99), "n": n}


async def signals(url: str, n: int) -> dict[str, float]:
    script = WORKER_SCRIPT.format(bench=str(BENCH_DIR), url=url)
    worker = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        app = build_app(url)  # this process: no worker
        await app.open()
        try:
            run = await app.start("listener", {"times": n})
            for i in range(n):
                await _until(app, run.id, lambda effects, i=i: len(effects) == 2 * i + 1)
                await app.signal(run.id, "ping", time.time())
            seen = await run.result(timeout=60)
        finally:
            await app.close()
    finally:
        assert worker.stdin is not None
        worker.stdin.close()
        worker.wait(timeout=30)
    ms = [x * 1000 for x in seen]
    return {"p50_ms": statistics.median(ms), "p99_ms": pct(ms, 0.99), "n": n}


async def _until(app: Any, run_id: str, ready: Any) -> None:
    """Poll (outside any measurement) until the run has parked on its next wait."""
    while True:
        row = await app.get_run(run_id)
        if row.status == "waiting" and ready(await app.effects(run_id)):
            return
        await asyncio.sleep(0.002)


async def wake_cpu(url: str, effects: int) -> dict[str, float]:
    app = build_app(url)
    done = asyncio.Event()
    cpu: list[float] = []

    async def after(call: Any, next: Any) -> Any:  # the 9th bump of a wake: it is done
        out = await next(call)
        if call.kind == "step" and call.seq % 10 == 0:
            done.set()
        return out

    app.gate.add("bench_probe", after, before="retry")
    async with app:
        run = await app.start("long_history", {"effects": effects})
        for _ in range(effects // 10):
            while not app._worker._parked:  # noqa: ASYNC110 - parked, in this process
                await asyncio.sleep(0.001)
            done.clear()
            t = time.process_time()
            await app.signal(run.id, "next")
            await done.wait()
            cpu.append(time.process_time() - t)
        await run.result(timeout=60)
    waits = len(cpu)
    early = cpu[5:15]  # around effect 100
    late = cpu[waits - 10 :]  # around effect 2,000
    early_ms = statistics.median(early) * 1000
    late_ms = statistics.median(late) * 1000
    return {"at_100_ms": early_ms, "at_end_ms": late_ms, "ratio": late_ms / early_ms}


def new_pg_db(admin: str) -> str:
    import psycopg

    name = f"aiosys_wakes_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin.rsplit("/", 1)[0] + "/" + name


def drop_pg_db(admin: str, url: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def measure(store: str, args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="aiosys-wakes-", dir=BENCH_DIR.parent)
    out: dict[str, Any] = {}
    for name, job in (
        ("timer", lambda url: timers(url, args.timers, args.sleep)),
        ("signal", lambda url: signals(url, args.signals)),
        ("wake_cpu", lambda url: wake_cpu(url, args.effects)),
    ):
        if store == "sqlite":
            url = f"sqlite:///{tmp}/{name}.db"
            out[name] = asyncio.run(job(url))
        else:
            url = new_pg_db(args.pg_admin_url)
            try:
                out[name] = asyncio.run(job(url))
            finally:
                drop_pg_db(args.pg_admin_url, url)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", choices=["sqlite", "postgres"])
    p.add_argument("--timers", type=int, default=100, help="sleeps in a row")
    p.add_argument("--sleep", type=float, default=0.05, help="seconds each sleep lasts")
    p.add_argument("--signals", type=int, default=100, help="signals sent from another process")
    p.add_argument("--effects", type=int, default=2000, help="effects of the long run")
    p.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = p.parse_args(argv)
    stores = [args.only] if args.only else ["sqlite", "postgres"]
    results = {store: measure(store, args) for store in stores}

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"wake-ups ({args.sleep * 1000:.0f} ms sleeps, {args.effects} effects)")
    for col in (
        "store",
        "timer late p50",
        "p99",
        "x-proc signal p50",
        "p99",
        "CPU/wake @100",
        f"@{args.effects}",
        "ratio",
    ):
        table.add_column(col, justify="right")
    for store, r in results.items():
        table.add_row(
            store,
            f"{r['timer']['p50_ms']:.1f} ms",
            f"{r['timer']['p99_ms']:.1f} ms",
            f"{r['signal']['p50_ms']:.1f} ms",
            f"{r['signal']['p99_ms']:.1f} ms",
            f"{r['wake_cpu']['at_100_ms']:.2f} ms",
            f"{r['wake_cpu']['at_end_ms']:.2f} ms",
            f"{r['wake_cpu']['ratio']:.2f}x",
        )
    Console(width=130).print(table)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"wakes-{stamp}.json"
    path.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
