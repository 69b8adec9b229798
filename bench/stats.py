#!/usr/bin/env python
"""``aiosys stats`` on a big store: how long the command takes, on SQLite and PostgreSQL.

Seeds a fresh store (a SQLite file; a fresh PostgreSQL database, dropped after) with
``--runs`` runs that ended in the last 24 hours over 10 workflows (2% dead, 4% failed),
``--effects`` effects per run (default 10: 1,000,000 effects; a few retried, a few in
error) and ``--calls`` model calls per run over 4 models, each table with ONE
``INSERT ... SELECT`` (a recursive CTE on SQLite, generate_series on PostgreSQL). Then times
``aiosys stats --since 24h --json`` as a command (the whole process: start, open, query,
print), ``--repeat`` times, and checks its percentiles against numpy's nearest-rank ones
(``method="inverted_cdf"``) on the same rows. The window holds every row: the worst case.
The target (issue 11): under 2 s on each store.

    .venv/bin/python bench/stats.py
    .venv/bin/python bench/stats.py --only sqlite --runs 10000

PostgreSQL is ``AIOSYS_BENCH_PG`` (default postgresql://postgres@127.0.0.1:5432/postgres);
after seeding, ``VACUUM ANALYZE`` stands in for the autovacuum a live server runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import psycopg

from aiosys.store import open_store

PG = os.environ.get("AIOSYS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_S = 2.0

# Pseudo-random but reproducible values from the row number i (the same on both stores):
# a latency of 0.05-100 s, a wait of 0-20 s, an end spread over the last 23 hours. Model
# calls are written as they happen, so their time grows with their row (as in a live store).
LAT = "((i * 7919) % 100003) / 1000.0 + 0.05"
WAIT = "((i * 104729) % 20011) / 1000.0"
END = ":now - 60 - ((i * 613) % 82800)"
STATUS = "CASE WHEN i % 50 = 7 THEN 'dead' WHEN i % 25 = 3 THEN 'failed' ELSE 'succeeded' END"

RUNS = f"""
INSERT INTO runs (id, workflow, version, wf_key, tenant, queue, priority, status, input,
                  created_at, updated_at, started_at, finished_at)
SELECT 'r' || i, 'wf' || (i % 10), '1', 'wf' || (i % 10) || '@1', 'acme', 'default', 0,
       {STATUS}, '{{}}',
       {END} - ({LAT}) - ({WAIT}), {END}, {END} - ({LAT}), {END}
FROM {{series}}
"""
EFFECTS = """
INSERT INTO effects (run_id, seq, kind, name, status, output, error, attempt, started_at,
                     finished_at)
SELECT 'r' || (i / :per), i % :per, 'step', 's' || (i % :per),
       CASE WHEN i % 997 = 5 THEN 'error' ELSE 'ok' END, '1',
       CASE WHEN i % 997 = 5 THEN '{"type": "x.E", "message": "m", "transient": '
            || CASE WHEN i % 1994 = 5 THEN 'true' ELSE 'false' END || '}' END,
       1 + CASE WHEN i % 89 = 0 THEN 2 ELSE 0 END, :now - 100, :now - 99
FROM {series}
"""
USAGE = """
INSERT INTO model_usage (at, tenant, workflow, run_id, seq, model, deployment, input_tokens,
                         output_tokens, cost, latency_ms, status, error)
SELECT :now - 60 - 82800 + i * 82800.0 / :n, 'acme', 'wf' || ((i / :per) % 10), 'r' || (i / :per),
       1, 'm' || (i % 4), 'd', 100, 20, 0.001,
       CASE WHEN i % 13 = 1 THEN NULL ELSE ((i * 15485863) % 500009) / 100.0 END,
       CASE WHEN i % 13 = 1 THEN 'cached' WHEN i % 101 = 2 THEN 'error' ELSE 'ok' END,
       CASE WHEN i % 101 = 2 THEN 'ProviderUnavailable: 503' END
FROM {series}
"""


def series(dialect: str, n: int) -> str:
    if dialect == "sqlite":
        return (
            "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s "
            f"WHERE i < {n - 1}) SELECT i FROM s)"
        )
    return f"generate_series(0::bigint, {n - 1}) AS s(i)"


def seed(url: str, runs: int, per: int, calls: int, now: float) -> None:
    params: dict[str, Any] = {"now": now, "per": per}
    statements = [
        (RUNS, runs, {"now": now}),
        (EFFECTS, runs * per, params),
        (USAGE, runs * calls, {"now": now, "per": calls, "n": runs * calls}),
    ]
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            for sql, n, p in statements:
                conn.execute(sql.replace("{series}", series("sqlite", n)), p)
        return
    with psycopg.connect(url, autocommit=True) as pg:
        for sql, n, p in statements:
            text = sql.replace("{series}", series("pg", n)).replace("%", "%%")
            for key in p:
                text = text.replace(f":{key}", f"%({key})s")
            pg.execute(text.encode(), p)
        pg.execute(b"VACUUM ANALYZE")


def numpy_check(url: str, out: dict[str, Any]) -> list[str]:
    """Percentile mismatches between the command's JSON and numpy on the same rows."""
    q = "SELECT workflow, finished_at - COALESCE(started_at, created_at) FROM runs"
    m = "SELECT model, latency_ms FROM model_usage WHERE status = 'ok' AND latency_ms IS NOT NULL"
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            runs, calls = conn.execute(q).fetchall(), conn.execute(m).fetchall()
    else:
        with psycopg.connect(url) as pg:
            runs, calls = pg.execute(q.encode()).fetchall(), pg.execute(m.encode()).fetchall()
    bad = []
    for rows, entries, key, name in (
        (runs, out["workflows"], "latency", "workflow"),
        (calls, out["models"], "latency_ms", "model"),
    ):
        values: dict[str, list[float]] = {}
        for group, v in rows:
            values.setdefault(group, []).append(v)
        for e in entries:
            want = np.percentile(values[e[name]], [50, 95, 99], method="inverted_cdf").tolist()
            got = [e[key]["p50"], e[key]["p95"], e[key]["p99"]]
            if got != want:
                bad.append(f"{e[name]}: {got} != numpy {want}")
    return bad


def time_cli(url: str, repeat: int) -> tuple[list[float], dict[str, Any]]:
    cmd = [sys.executable, "-m", "aiosys.cli", "stats", "--since", "24h", "--json", "--store", url]
    walls, out = [], {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise SystemExit(f"aiosys stats failed: {done.stderr}")
        out = json.loads(done.stdout)
    return walls, out


async def migrate(url: str) -> float:
    store = open_store(url)
    await store.open()
    now = store.clock()
    await store.close()
    return now


def bench(url: str, label: str, args: argparse.Namespace) -> bool:
    now = asyncio.run(migrate(url))
    t0 = time.perf_counter()
    seed(url, args.runs, args.effects, args.calls, now)
    seeded = time.perf_counter() - t0
    walls, out = time_cli(url, args.repeat)
    bad = numpy_check(url, out)
    effects = args.runs * args.effects
    calls = sum(m["calls"] for m in out["models"])
    best, median = min(walls), statistics.median(walls)
    ok = median < TARGET_S and not bad
    print(
        f"{label:<10} {effects:>9,} effects {calls:>8,} calls  seeded in {seeded:5.1f}s  "
        f"aiosys stats: median {median:.2f}s best {best:.2f}s "
        f"(of {len(walls)})  percentiles {'= numpy' if not bad else 'DIFFER'}  "
        f"{'PASS' if ok else 'FAIL'} (< {TARGET_S:g}s)"
    )
    for line in bad:
        print(f"  {line}")
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=100_000)
    p.add_argument("--effects", type=int, default=10, help="effects per run")
    p.add_argument("--calls", type=int, default=2, help="model calls per run")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--only", choices=("sqlite", "postgres"))
    args = p.parse_args()
    results = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(bench(f"sqlite:///{Path(tmp) / 'stats.db'}", "sqlite", args))
    if args.only in (None, "postgres"):
        name = f"aiosys_bench_stats_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}".encode())
        try:
            url = urlsplit(PG)._replace(path=f"/{name}").geturl()
            results.append(bench(url, "postgres", args))
        finally:
            with psycopg.connect(PG, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
