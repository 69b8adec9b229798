#!/usr/bin/env python
"""What a budget check costs as usage grows: ``spent()`` (the read every budgeted model call
makes before it leaves) over a tenant's month of metered calls, on SQLite and PostgreSQL.

The store keeps daily spend buckets beside the usage rows (a trigger, migration 0003), so
the check reads a few buckets plus the rows of one part day; the baseline is the query it
replaced, a SUM over the period's usage rows (the usage table's own tenant/time index).
Both run in the same process on the same data; the ratio is printed.

    .venv/bin/python bench/budget.py                    # 300k rows, both stores
    .venv/bin/python bench/budget.py --rows 1000000 --stores sqlite

Not a test: no assertion, just figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from typing import Any

from _common import _version
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from aiosys.models.links.metering import spent
from aiosys.store import Store, open_store

DAY = 86400.0
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# The query budgets ran before the daily buckets: every usage row of the period.
SUM_ROWS = "SELECT COALESCE(SUM(cost), 0) AS cost FROM model_usage WHERE tenant = {p} AND at >= {s}"


async def fill(store: Store, rows: int, days: int, progress: Progress) -> None:
    """``rows`` usage rows of tenant ``acme`` spread evenly over the last ``days`` days."""
    now = time.time()
    task = progress.add_task(f"{store.dialect}: writing {rows:,} usage rows", total=rows)
    batch: list[dict[str, Any]] = []
    for i in range(rows):
        batch.append(
            {
                "at": now - days * DAY * (i / rows),
                "tenant": "acme",
                "workflow": f"wf-{i % 5}",
                "run_id": None,
                "seq": None,
                "task": None,
                "model": "m",
                "deployment": "m@1",
                "input_tokens": 10,
                "output_tokens": 20,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "reasoning_tokens": 0,
                "cost": 0.001,
                "latency_ms": 1.0,
                "status": "ok",
                "error": None,
                "reservation": None,
            }
        )
        if len(batch) == 10_000 or i == rows - 1:
            await store.execute_many("insert_usage", batch)
            progress.advance(task, len(batch))
            batch = []


async def timed(fn: Any, repeat: int) -> tuple[float, float]:
    """Median milliseconds of ``fn()`` and its value."""
    times, value = [], 0.0
    for _ in range(repeat):
        t = time.perf_counter()
        value = await fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), value


async def sum_rows(store: Store, since: float, pg: Any) -> float:
    """The old check: on SQLite through the store's own connection, on PostgreSQL through
    one kept open (no named query exists for it any more)."""
    if store.dialect == "sqlite":
        sql = SUM_ROWS.format(p="?", s="?")
        conn = store._conn  # type: ignore[attr-defined]
        return float(conn.execute(sql, ("acme", since)).fetchone()[0])
    cur = await pg.execute(SUM_ROWS.format(p="%s", s="%s"), ("acme", since))
    row = await cur.fetchone()
    assert row is not None
    return float(row[0])


async def measure(
    url: str, rows: int, days: int, repeat: int, progress: Progress
) -> dict[str, Any]:
    store = open_store(url)
    await store.open()
    pg = None
    if store.dialect == "postgres":
        import psycopg

        pg = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        await fill(store, rows, days, progress)
        month = time.time() - days * DAY
        midday = time.time() - (days / 2) * DAY
        out: dict[str, Any] = {"store": store.dialect, "rows": rows}
        for label, since in (("whole days", (month // DAY) * DAY), ("part day", midday)):
            new_ms, new = await timed(lambda s=since: spent(store, "acme", since=s), repeat)
            old_ms, old = await timed(lambda s=since: sum_rows(store, s, pg), max(3, repeat // 5))
            out[label] = {
                "buckets_ms": new_ms,
                "sum_rows_ms": old_ms,
                "agree": abs(new - old) < 1e-6,
            }
        return out
    finally:
        if pg is not None:
            await pg.close()
        await store.close()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=300_000, help="usage rows of the tenant")
    p.add_argument("--days", type=int, default=30, help="spread over this many days")
    p.add_argument("--repeat", type=int, default=50, help="timed checks per cell")
    p.add_argument("--stores", default="sqlite,postgres", help="comma-separated")
    args = p.parse_args()
    console = Console()
    console.print(f"bench/budget.py  aiosys {_version('aiosys')}  psycopg {_version('psycopg')}")
    results = []
    with Progress(console=console, transient=True) as progress:
        for kind in args.stores.split(","):
            if kind == "sqlite":
                url = f"sqlite:///{tempfile.mkdtemp(prefix='aiosys-budget-')}/bench.db"
                results.append(
                    asyncio.run(measure(url, args.rows, args.days, args.repeat, progress))
                )
            else:
                import psycopg

                db = f"aiosys_budget_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(f"CREATE DATABASE {db}")
                try:
                    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db}"
                    results.append(
                        asyncio.run(measure(url, args.rows, args.days, args.repeat, progress))
                    )
                finally:
                    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                        admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    t = Table(
        title=f"budget check (spent since ...) over {args.rows:,} usage rows in "
        f"{args.days} days; median ms"
    )
    for col in ("store", "since", "daily buckets", "sum of rows", "ratio", "same answer"):
        t.add_column(col, justify="left" if col in ("store", "since") else "right")
    for r in results:
        for label in ("whole days", "part day"):
            c = r[label]
            t.add_row(
                r["store"],
                label,
                f"{c['buckets_ms']:.3f}",
                f"{c['sum_rows_ms']:.3f}",
                f"{c['sum_rows_ms'] / c['buckets_ms']:.0f}x",
                "yes" if c["agree"] else "NO",
            )
    console.print(t)


if __name__ == "__main__":
    main()
