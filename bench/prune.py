#!/usr/bin/env python
"""Pruning: how fast ``Store.prune`` deletes ended runs with their rows, and how long one
batch's transaction holds its locks.

Seeds ``--runs`` ended runs (40 days old), each with ``--effects`` effects, one signal and one
model usage row, plus ``--live`` waiting runs, straight into a fresh store (SQLite file and a
fresh PostgreSQL database), then prunes everything that ended more than 30 days ago in
batches of ``--batch`` runs. Prints runs/s, rows/s and the p50 / max time of a batch (its
transaction: choosing, locking and deleting), and checks that the live runs are all there.

    .venv/bin/python bench/prune.py
    .venv/bin/python bench/prune.py --only sqlite --runs 50000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import time
import uuid
from typing import Any

import psycopg

from aiosys.store import open_store
from aiosys.store.base import PruneReport

DAY = 86_400.0
PG = os.environ.get("AIOSYS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

RUN = (
    "INSERT INTO runs (id, workflow, version, wf_key, tenant, queue, status, input, created_at,"
    " updated_at, finished_at) VALUES (?, 'wf', '1', 'wf@1', 'acme', 'default', ?, '{}', ?, ?, ?)"
)
EFFECT = (
    "INSERT INTO effects (run_id, seq, kind, name, status, output, attempt, started_at,"
    " finished_at) VALUES (?, ?, 'step', 's', 'ok', '1', 1, ?, ?)"
)
SIGNAL = "INSERT INTO signals (run_id, name, payload, created_at) VALUES (?, 'go', '{}', ?)"
USAGE = (
    "INSERT INTO model_usage (at, tenant, workflow, run_id, model, cost, status)"
    " VALUES (?, 'acme', 'wf', ?, 'm', 0.001, 'ok')"
)


def rows(n: int, effects: int, live: int, t: float) -> dict[str, list[tuple[Any, ...]]]:
    ended_at = t - 40 * DAY
    out: dict[str, list[tuple[Any, ...]]] = {RUN: [], EFFECT: [], SIGNAL: [], USAGE: []}
    for i in range(n + live):
        run_id = uuid.uuid4().hex
        done = i < n
        out[RUN].append(
            (
                run_id,
                "succeeded" if done else "waiting",
                ended_at,
                ended_at,
                ended_at if done else None,
            )
        )
        out[EFFECT].extend((run_id, seq, ended_at, ended_at) for seq in range(effects))
        out[SIGNAL].append((run_id, ended_at))
        out[USAGE].append((ended_at, run_id))
    return out


def seed(url: str, data: dict[str, list[tuple[Any, ...]]]) -> None:
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            for sql, params in data.items():
                conn.executemany(sql, params)
        return
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for sql, params in data.items():
            cur.executemany(sql.replace("?", "%s"), params)


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    store = open_store(url)
    await store.open()
    try:
        seed(url, rows(args.runs, args.effects, args.live, store.clock()))
        marks = [time.perf_counter()]

        def tick(_: PruneReport) -> None:
            marks.append(time.perf_counter())

        report = await store.prune(store.clock() - 30 * DAY, batch=args.batch, progress=tick)
        seconds = marks[-1] - marks[0]
        # each batch's time; the last tick is the reservations' statement
        batches = [b - a for a, b in itertools.pairwise(marks[:-1])]
        left = await store.list_runs(limit=args.live + 1)
    finally:
        await store.close()
    assert report.runs == args.runs and len(left) == args.live, (report, len(left))
    deleted = sum(report.counts().values())
    return {
        "runs_per_s": report.runs / seconds,
        "rows_per_s": deleted / seconds,
        "batch_p50_ms": statistics.median(batches) * 1000,
        "batch_max_ms": max(batches) * 1000,
        "seconds": seconds,
        "rows": deleted,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=20_000)
    p.add_argument("--effects", type=int, default=10)
    p.add_argument("--live", type=int, default=100)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--only", choices=("sqlite", "postgres"))
    args = p.parse_args()
    each = f"{args.effects} effects, 1 signal, 1 usage row"
    print(f"{args.runs} ended runs x ({each}), batch {args.batch}")
    if args.only != "postgres":
        with tempfile.TemporaryDirectory() as tmp:
            r = asyncio.run(measure(f"sqlite:///{tmp}/prune.db", args))
        print(_line("sqlite", r))
    if args.only != "sqlite":
        name = f"aiosys_bench_prune_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"'.encode())
        try:
            r = asyncio.run(measure(PG.rsplit("/", 1)[0] + f"/{name}", args))
            print(_line("postgres", r))
        finally:
            with psycopg.connect(PG, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)'.encode())


def _line(system: str, r: dict[str, Any]) -> str:
    return (
        f"{system:9} {r['runs_per_s']:8.0f} runs/s  {r['rows_per_s']:9.0f} rows/s  "
        f"batch p50 {r['batch_p50_ms']:6.1f} ms  max {r['batch_max_ms']:6.1f} ms  "
        f"({r['rows']} rows in {r['seconds']:.1f} s)"
    )


if __name__ == "__main__":
    main()
