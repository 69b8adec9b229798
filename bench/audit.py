#!/usr/bin/env python
"""Audit log verification time: 1,000,000 records, on SQLite and on PostgreSQL.

For each store, a fresh database gets N records (default 1,000,000), signed by a checkpoint
every 10,000. All but the last 1,000 are bulk-loaded (the chain computed in Python with
``aiosys.governance.audit_record``, the same functions the verifier uses; ``COPY`` on
PostgreSQL, ``executemany`` on SQLite) because appending a million records one statement at
a time would time the loader, not the verifier; the last 1,000 go through the real append
path (``AuditLog.append``: the SQL computes their hashes) and a real checkpoint signs them.
Then ``app.audit.verify()`` (what ``aiosys audit verify`` runs) is timed, and a tampered
record near the end is shown to be found.

    .venv/bin/python bench/audit.py                  # both stores, 1,000,000 records
    .venv/bin/python bench/audit.py --only sqlite --records 200000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiosys import App
from aiosys.governance.audit_checkpoint import Checkpoint, make_checkpoint
from aiosys.governance.audit_record import GENESIS, AuditRecord, chain_hash

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
EVERY = 10_000
TAIL = 1_000  # appended through the real path


def make_record(i: int) -> AuditRecord:
    run = uuid.UUID(int=i // 11 + 1)
    return AuditRecord(
        principal="user:acme/alice",
        tenant=("acme", "globex", "initech")[i % 3],
        action="step",
        resource="extract_invoice_lines",
        outcome="ok",
        run_id=str(run),
        effect_seq=i % 11,
        at=1_700_000_000_000_000 + i * 1000,
        detail={"workflow": "invoice_intake", "attempt": 1},
    )


def chain(n: int, key: Ed25519PrivateKey) -> Iterator[tuple[tuple[Any, ...], Checkpoint | None]]:
    """Rows (seq, prev_hash, hash, digest, tenant, at, body) and the checkpoint due after each."""
    prev, last_cp = GENESIS, None
    for seq in range(1, n + 1):
        p = make_record(seq).params()
        h = chain_hash(prev, seq, p["digest"])
        cp = None
        if seq % EVERY == 0:
            last_cp = make_checkpoint(key, seq // EVERY, seq, h, p["at"], last_cp)
            cp = last_cp
        yield (seq, prev, h, p["digest"], p["tenant"], p["at"], p["body"]), cp
        prev = h


def load_sqlite(path: Path, n: int, key: Ed25519PrivateKey) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    rows, cps, head = [], [], (0, GENESIS)
    for r, cp in chain(n, key):
        rows.append(r)
        head = (r[0], r[2])
        if cp is not None:
            cps.append(cp.row())
        if len(rows) == 50_000:
            conn.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            rows = []
    conn.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.executemany(
        "INSERT INTO audit_checkpoints VALUES (:n, :seq, :at, :payload, :signature)", cps
    )
    conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", head)
    conn.execute("COMMIT")
    conn.close()


def load_postgres(url: str, n: int, key: Ed25519PrivateKey) -> None:
    with psycopg.connect(url) as conn:
        cps, head = [], (0, GENESIS)
        with conn.cursor() as cur:
            columns = "(seq, prev_hash, hash, digest, tenant, at, body)"
            with cur.copy(f"COPY audit_log {columns} FROM STDIN") as copy:
                for r, cp in chain(n, key):
                    copy.write_row(r)
                    head = (r[0], r[2])
                    if cp is not None:
                        cps.append(cp.row())
            cur.executemany(
                "INSERT INTO audit_checkpoints VALUES "
                "(%(n)s, %(seq)s, %(at)s, %(payload)s, %(signature)s)",
                cps,
            )
            cur.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", head)
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        # What autovacuum does after a million inserts: hint bits set, statistics taken
        # (else the first read of each page writes it again, and is timed here).
        conn.execute("VACUUM ANALYZE audit_log")


async def measure(url: str, key_path: Path, n: int, load: Any) -> dict[str, Any]:
    app = App(store=url, audit_key=key_path, audit_checkpoint_records=10**9)
    await app.open()  # the schema
    await app.close()
    key = app.audit.signing_key()
    t0 = time.perf_counter()
    load(n - TAIL, key)
    app = App(store=url, audit_key=key_path, audit_checkpoint_records=10**9)
    async with app:
        for start in range(n - TAIL, n, 100):
            await asyncio.gather(
                *(app.audit.append(make_record(i + 1)) for i in range(start, start + 100))
            )
        await app.audit.checkpoint()
        built = time.perf_counter() - t0
        report = await app.audit.verify()
        cpu = time.process_time()
        again = await app.audit.verify()
        cpu = time.process_time() - cpu
    return {"built_s": built, "report": report, "again": again, "cpu_s": cpu}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--only", choices=["sqlite", "postgres"])
    p.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = p.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        key_path = Path(tmp) / "audit.pem"
        key_path.write_bytes(
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        if args.only in (None, "sqlite"):
            db = Path(tmp) / "audit.db"
            out = asyncio.run(
                measure(f"sqlite:///{db}", key_path, n, lambda m, k: load_sqlite(db, m, k))
            )
            show("SQLite", out)
        if args.only in (None, "postgres"):
            dbname = f"aiosys_bench_audit_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.pg_admin_url, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{dbname}"')
            url = args.pg_admin_url.rsplit("/", 1)[0] + f"/{dbname}"
            try:
                out = asyncio.run(measure(url, key_path, n, lambda m, k: load_postgres(url, m, k)))
                show("PostgreSQL", out)
            finally:
                with psycopg.connect(args.pg_admin_url, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def show(store: str, out: dict[str, Any]) -> None:
    r, again = out["report"], out["again"]
    print(f"{store}: built {r.records:,} records in {out['built_s']:.1f} s")
    print(f"  {r.line()}")
    print(
        f"  verify again: {again.seconds:.2f} s ({again.records / again.seconds:,.0f} records/s), "
        f"this process's CPU {out['cpu_s']:.2f} s; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
