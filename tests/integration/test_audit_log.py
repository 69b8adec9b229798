"""The audit log on both stores: tampering of each kind, made with SQL on the database, is
found by verify, which names the first bad record; effects are audited in their record's
transaction; 64 runs in flight keep one chain; extracts verify on their own."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiosys import App, Context, PermanentError
from aiosys.errors import AiosysError, ConfigError, PermissionDenied
from aiosys.governance.audit_export import verify_extract
from aiosys.governance.audit_keys import load_verify_key
from aiosys.governance.audit_record import AuditRecord, chain_hash, content_digest
from aiosys.kernel.principal import Principal

RECORDS = 30
SIGNED = 20  # a checkpoint signs records 1..20; 21..30 are chained, not yet signed


def write_key(path: Path) -> Path:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    return path


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return write_key(tmp_path / "audit.pem")


def sql_on(store_url: str) -> Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Run SQL on the store's database directly, as someone tampering with it would."""

    def run(query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if store_url.startswith("sqlite"):
            conn = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
            try:
                cur = conn.execute(query.replace("%s", "?"), params)
                return cur.fetchall() if cur.description else []
            finally:
                conn.close()
        with psycopg.connect(store_url, autocommit=True) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    return run


def record(i: int, tenant: str = "acme") -> AuditRecord:
    return AuditRecord(
        principal=f"user:{tenant}/alice",
        tenant=tenant,
        action="step",
        resource=f"step-{i}",
        outcome="ok",
        run_id=f"run-{i}",
        effect_seq=i,
        at=1_700_000_000_000_000 + i,
    )


async def build_log(store_url: str, key_path: Path, tenants: tuple[str, ...] = ("acme",)) -> None:
    app = App(store=store_url, audit_key=key_path, audit_checkpoint_records=10_000)
    async with app:
        for i in range(1, SIGNED + 1):
            await app.audit.append(record(i, tenants[i % len(tenants)]))
        assert (await app.audit.checkpoint()) is not None
        await asyncio.gather(
            *(
                app.audit.append(record(i, tenants[i % len(tenants)]))
                for i in range(SIGNED + 1, RECORDS + 1)
            )
        )
        # No closing checkpoint: 21..30 stay unsigned.
        task, app.audit.checkpointer._task = app.audit.checkpointer._task, None
        if task is not None:
            task.cancel()


async def verify(store_url: str, key_path: Path) -> Any:
    app = App(store=store_url, audit_key=key_path)
    await app.open()
    try:
        return await app.audit.verify()
    finally:
        await app.close()


async def test_an_untouched_log_verifies_with_its_checkpoint(store_url, key_path):
    await build_log(store_url, key_path)
    report = await verify(store_url, key_path)
    assert report.ok, report.line()
    assert (report.records, report.checkpoints, report.signed_to, report.unsigned) == (
        RECORDS,
        1,
        SIGNED,
        RECORDS - SIGNED,
    )
    assert report.line().startswith("audit log intact: 30 records, 1 checkpoints")


def shift(run: Callable[..., Any], from_seq: int, by: int) -> None:
    """Renumber records from ``from_seq`` on by ``by`` (through negatives: no key clash)."""
    run("UPDATE audit_log SET seq = -seq WHERE seq >= %s", (from_seq,))
    run("UPDATE audit_log SET seq = -seq + %s WHERE seq < 0", (by,))


def row(run: Callable[..., Any], seq: int) -> tuple[Any, ...]:
    return run(
        "SELECT prev_hash, hash, digest, tenant, at, body FROM audit_log WHERE seq = %s", (seq,)
    )[0]


@dataclass
class Tamper:
    name: str
    change: Callable[[Callable[..., Any]], None]
    seq: int
    kind: str


def edit(run: Callable[..., Any]) -> None:
    run("UPDATE audit_log SET body = replace(body, 'step-7', 'step-8') WHERE seq = 7")


def edit_tenant(run: Callable[..., Any]) -> None:
    run("UPDATE audit_log SET tenant = 'other' WHERE seq = 24")


def delete(run: Callable[..., Any]) -> None:
    run("DELETE FROM audit_log WHERE seq = 12")


def insert(run: Callable[..., Any]) -> None:
    # A forged record put in at 9, correctly chained to 8; 9.. move up one.
    prev = row(run, 8)[1]
    shift(run, 9, 1)
    forged = record(99).params()
    digest = content_digest(forged["tenant"], forged["at"], forged["body"])
    run(
        "INSERT INTO audit_log (seq, prev_hash, hash, digest, tenant, at, body) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            9,
            prev,
            chain_hash(prev, 9, digest),
            digest,
            forged["tenant"],
            forged["at"],
            forged["body"],
        ),
    )


def swap(run: Callable[..., Any]) -> None:
    run("UPDATE audit_log SET seq = -1 WHERE seq = 15")
    run("UPDATE audit_log SET seq = 15 WHERE seq = 16")
    run("UPDATE audit_log SET seq = 16 WHERE seq = -1")


def truncate_unsigned_tail(run: Callable[..., Any]) -> None:
    run("DELETE FROM audit_log WHERE seq > 26")  # after the last checkpoint; head untouched


def truncate_signed_range(run: Callable[..., Any]) -> None:
    # Deep into the signed range, with the head moved back to match: the checkpoint says no.
    last = row(run, 14)[1]
    run("DELETE FROM audit_log WHERE seq > 14")
    run("UPDATE audit_head SET seq = 14, hash = %s WHERE id = 1", (last,))


def rewrite_with_hashes(run: Callable[..., Any]) -> None:
    # Record 5 changed and its digest and hash recomputed: record 6 no longer chains to it.
    prev, _, _, tenant, at, body = row(run, 5)
    body = body.replace("step-5", "step-6")
    digest = content_digest(tenant, at, body)
    run(
        "UPDATE audit_log SET body = %s, digest = %s, hash = %s WHERE seq = 5",
        (body, digest, chain_hash(prev, 5, digest)),
    )


def forge_checkpoint(run: Callable[..., Any]) -> None:
    run("UPDATE audit_checkpoints SET payload = replace(payload, '\"seq\":20', '\"seq\":19')")


TAMPERS = [
    Tamper("edit", edit, 7, "edited"),
    Tamper("edit_tenant_column", edit_tenant, 24, "edited"),
    Tamper("delete", delete, 12, "missing"),
    Tamper("insert", insert, 9, "inserted"),
    Tamper("swap", swap, 15, "reordered"),
    Tamper("truncate_unsigned_tail", truncate_unsigned_tail, 27, "truncated"),
    Tamper("truncate_signed_range", truncate_signed_range, 15, "truncated"),
    Tamper("rewrite_with_hashes", rewrite_with_hashes, 6, "unchained"),
    Tamper("forge_checkpoint", forge_checkpoint, 19, "checkpoint"),
]


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.name for t in TAMPERS])
async def test_verify_names_the_first_bad_record_of_each_tampering(store_url, key_path, tamper):
    await build_log(store_url, key_path)
    tamper.change(sql_on(store_url))
    report = await verify(store_url, key_path)
    assert not report.ok
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (tamper.seq, tamper.kind), report.line()
    assert report.line().startswith(f"audit log NOT intact: record {tamper.seq} ({tamper.kind})")


async def test_deleted_checkpoints_and_a_deleted_head_row_are_found(store_url, key_path):
    await build_log(store_url, key_path)
    app = App(store=store_url, audit_key=key_path)
    async with app:
        assert (await app.audit.checkpoint()) is not None  # checkpoint 2 signs 1..30
    assert (await verify(store_url, key_path)).ok
    run = sql_on(store_url)
    run("DELETE FROM audit_checkpoints WHERE n = 2")  # the last one
    report = await verify(store_url, key_path)
    assert report.problem is not None, report.line()
    assert (report.problem.seq, report.problem.kind) == (SIGNED + 1, "checkpoint")
    assert "checkpoint 2 missing (deleted)" in report.problem.message
    run("DELETE FROM audit_checkpoints")  # all of them
    report = await verify(store_url, key_path)
    assert report.problem is not None, report.line()
    assert (report.problem.seq, report.problem.kind) == (1, "checkpoint")
    assert "checkpoints 1 to 2 missing" in report.problem.message
    run("DELETE FROM audit_log")
    run("DELETE FROM audit_head")  # everything
    report = await verify(store_url, key_path)
    assert report.problem is not None and report.problem.kind == "head", report.line()
    assert report.line().startswith("audit log NOT intact: ")
    assert report.as_dict()["status"] == "broken"
    app = App(store=store_url, audit_key=key_path)
    async with app:
        with pytest.raises(AiosysError, match="head row is missing"):
            await app.audit.export(io.StringIO())


async def test_an_empty_log_is_reported_empty_not_intact(store_url, key_path):
    report = await verify(store_url, key_path)
    assert report.ok and report.status == "empty" and report.records == 0
    assert report.line().startswith("audit log empty: no records, no checkpoints")


async def test_a_checkpoint_signed_by_another_key_is_refused(store_url, key_path, tmp_path):
    await build_log(store_url, key_path)
    report = await verify(store_url, write_key(tmp_path / "other.pem"))
    assert report.problem is not None and report.problem.kind == "checkpoint"
    assert "is signed by key" in report.problem.message


def make_app(store_url: str, key_path: Path, **kw: Any) -> App:
    app = App(store=store_url, audit_key=key_path, **kw)

    @app.step()
    async def inc(x: int) -> int:
        return x + 1

    @app.step()
    async def boom() -> None:
        raise PermanentError("no")

    @app.workflow()
    async def ten(ctx: Context, x: int) -> int:
        for _ in range(10):
            x = await inc(x)
        return x

    @app.workflow()
    async def fails(ctx: Context) -> None:
        await boom()

    return app


async def audit_bodies(app: App) -> list[dict[str, Any]]:
    import json

    rows = await app.store.fetch("audit_page", {"after": 0, "upto": 10**9, "limit": 10**6})
    return [{**json.loads(r["body"]), "tenant": r["tenant"]} for r in rows]


async def test_each_step_is_audited_once_with_its_run_and_outcome(store_url, key_path):
    app = make_app(store_url, key_path)
    async with app:
        handle = await app.start("ten", {"x": 1}, tenant="acme")
        assert await handle.result() == 11
        failed = await app.start("fails", tenant="acme")
        with pytest.raises(Exception, match="no"):
            await failed.result()
        bodies = await audit_bodies(app)
        effects = await app.effects(handle.id)
    starts = [b for b in bodies if b["action"] == "start_workflow"]
    steps = [b for b in bodies if b["action"] == "step" and b["run_id"] == handle.id]
    assert [s["run_id"] for s in starts] == [handle.id, failed.id]
    assert all(s["outcome"] == "created" and s["tenant"] == "acme" for s in starts)
    assert [s["effect_seq"] for s in steps] == [e.seq for e in effects if e.kind == "step"]
    assert {s["outcome"] for s in steps} == {"ok"}
    (error,) = [b for b in bodies if b["run_id"] == failed.id and b["action"] == "step"]
    assert error["outcome"] == "error:PermanentError"
    assert error["principal"] == "user:default/local"


async def test_an_audited_effect_and_its_record_commit_together(store_url, key_path):
    # Every recorded step has its audit record and no audit record lacks its effect: the
    # audit row rides in the effect record's transaction.
    app = make_app(store_url, key_path)
    async with app:
        runs = [await app.start("ten", {"x": i}) for i in range(8)]
        for r in runs:
            await r.result()
        bodies = await audit_bodies(app)
        recorded = {(r.id, e.seq) for r in runs for e in await app.effects(r.id)}
    audited = {(b["run_id"], b["effect_seq"]) for b in bodies if b["action"] == "step"}
    assert audited == recorded


async def test_64_runs_in_flight_keep_one_unbroken_chain(store_url, key_path):
    app = make_app(store_url, key_path, concurrency=64, audit_checkpoint_records=100)
    async with app:
        runs = await asyncio.gather(*(app.start("ten", {"x": i}) for i in range(64)))
        assert await asyncio.gather(*(r.result() for r in runs)) == [i + 10 for i in range(64)]
    report = await verify(store_url, key_path)
    assert report.ok, report.line()
    assert report.records == 64 * 11
    assert report.checkpoints >= 1 and report.unsigned == 0  # the closing checkpoint


async def test_audit_off_records_nothing(store_url, key_path):
    app = make_app(store_url, key_path, audit=False)
    async with app:
        assert await app.run("ten", {"x": 1}) == 11
        assert not app.audit.enabled
        assert await audit_bodies(app) == []


async def test_an_extract_verifies_on_its_own_and_a_tenant_sees_only_its_records(
    store_url, key_path
):
    await build_log(store_url, key_path, tenants=("acme", "globex"))
    app = App(store=store_url, audit_key=key_path)
    await app.open()
    try:
        whole, acme = io.StringIO(), io.StringIO()
        assert (await app.audit.export(whole))["records"] == RECORDS
        with app.as_principal(Principal(id="alice", tenant="acme", roles={"admin"})):
            counts = await app.audit.export(acme)
            with pytest.raises(PermissionDenied):
                await app.audit.export(io.StringIO(), tenant="globex")
            with pytest.raises(PermissionDenied):
                await app.audit.verify()
    finally:
        await app.close()
    assert counts == {"records": 15, "stubs": 15, "checkpoints": 1}
    assert "globex" not in acme.getvalue()
    pinned = load_verify_key(key_path)
    for text in (whole.getvalue(), acme.getvalue()):
        report = verify_extract(text.splitlines(), pinned)
        assert report.ok, report.line()
        # Against only the key the extract declares, consistent is not verified.
        report = verify_extract(text.splitlines(), None)
        assert report.problem is None and not report.ok and report.status == "unpinned"
    # An edit of one of the tenant's own records in the extract is found.
    lines = acme.getvalue().splitlines()
    forged = [ln.replace("step-4", "step-9") if '"seq": 4,' in ln else ln for ln in lines]
    report = verify_extract(forged, pinned)
    assert report.problem is not None and report.problem.seq == 4


async def test_a_decision_handed_to_the_log_is_recorded(store_url, key_path):
    @dataclass
    class Decision:  # the shape the policy engine hands its listeners
        principal: str
        tenant: str
        action: str
        resource: str
        decision: str
        policies: tuple[str, ...]
        policy_version: str
        run_id: str | None
        seq: int | None
        time: float
        call: Any = None

    app = App(store=store_url, audit_key=key_path)
    async with app:
        app.audit.on_decision(
            Decision(
                "user:acme/bob",
                "acme",
                "call_model",
                "model:gpt",
                "deny",
                ("p1",),
                "v9",
                None,
                None,
                1_700_000_000.5,
            )
        )
        await app.audit.close()
        (body,) = await audit_bodies(app)
    assert body["decision"] == "deny" and body["policies"] == ["p1"]
    assert body["policy_version"] == "v9" and body["tenant"] == "acme"


async def test_records_appended_together_are_chained_in_order_in_one_batch(store_url, key_path):
    """Concurrent appends share one transaction (PostgreSQL: one statement taking each
    column as an array); the chain holds them in the order appended and verifies."""
    records = [
        AuditRecord(
            principal="user:acme/ann",
            tenant="acme",
            action="probe",
            resource=f"r{i}",
            at=1_700_000_000_000_000 + i,
        )
        for i in range(5)
    ]
    app = App(store=store_url, audit_key=key_path)
    async with app:
        before = len(await audit_bodies(app))
        await asyncio.gather(*(app.audit.append(r) for r in records))
        rows = await app.store.fetch("audit_page", {"after": 0, "upto": 10**9, "limit": 10**6})
        report = await app.audit.verify()
    assert report.ok, report.line()
    added = rows[before:]
    assert [r["body"] for r in added] == [r.body() for r in records]
    assert [r["seq"] for r in added] == list(range(before + 1, before + 6))
    for i in range(before, before + 5):
        row, prev_hash = rows[i], rows[i - 1]["hash"] if i else "0" * 64
        assert row["prev_hash"] == prev_hash
        assert row["hash"] == chain_hash(prev_hash, row["seq"], row["digest"])


async def test_each_start_record_is_chained_before_its_runs_effects(store_url, key_path):
    # PostgreSQL keeps a start's record pending (committed with its run, unchained) until
    # the next append chains it: the first effect of its run at the latest.
    app = make_app(store_url, key_path, concurrency=16)
    async with app:
        runs = await asyncio.gather(*(app.start("ten", {"x": i}) for i in range(16)))
        await asyncio.gather(*(r.result() for r in runs))
        bodies = await audit_bodies(app)
    position = {(b["action"], b["run_id"], b.get("effect_seq")): i for i, b in enumerate(bodies)}
    for r in runs:
        start = position[("start_workflow", r.id, None)]
        assert all(start < position[("step", r.id, seq)] for seq in range(1, 11)), r.id
    if not store_url.startswith("sqlite"):
        assert sql_on(store_url)("SELECT count(*) FROM audit_pending") == [(0,)]


CRASH_AFTER_START = """
import asyncio, os, signal, sys
from aiosys import App, Context

app = App(store=sys.argv[1], audit_key=sys.argv[2])

@app.workflow()
async def ten(ctx: Context, x: int) -> int:
    return x

async def main() -> None:
    await app.open()
    run = await app.start("ten", {"x": 1}, tenant="acme")
    print(run.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # before close: nothing else is written

asyncio.run(main())
"""


async def test_a_start_record_left_pending_by_a_killed_process_is_chained_later(
    store_url, key_path, tmp_path
):
    import subprocess
    import sys

    script = tmp_path / "start_and_die.py"
    script.write_text(CRASH_AFTER_START)
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(script), store_url, str(key_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -9, proc.stderr
    run_id = proc.stdout.strip()
    sql = sql_on(store_url)
    assert sql("SELECT status FROM runs WHERE id = %s", (run_id,)) == [("pending",)]
    if not store_url.startswith("sqlite"):  # committed with its run, not yet chained
        assert sql("SELECT count(*) FROM audit_pending") == [(1,)]
        assert sql("SELECT count(*) FROM audit_log") == [(0,)]
    report = await verify(store_url, key_path)  # chains what waits, then verifies
    assert report.ok, report.line()
    assert report.records == 1
    (body,) = sql("SELECT body FROM audit_log")
    assert f'"run_id":"{run_id}"' in body[0] and '"start_workflow"' in body[0]
    if not store_url.startswith("sqlite"):
        assert sql("SELECT count(*) FROM audit_pending") == [(0,)]


async def test_a_process_with_another_key_does_not_sign_the_log(store_url, key_path, tmp_path):
    """A process whose signing key is not the log's (a CLI command run where the operator's
    key is not configured: a PostgreSQL store's default key is generated in the working
    directory) appends its records but signs no checkpoint: one signed by its key would
    make the log fail verification with the log's own key, for good."""
    await build_log(store_url, key_path)
    stranger = App(store=store_url, audit_key=write_key(tmp_path / "stranger.pem"))
    async with stranger:
        await stranger.audit.append(record(RECORDS + 1))
        with pytest.raises(ConfigError, match="not the key"):
            await stranger.audit.checkpoint()
    # Its closing checkpoint was refused too: the log is intact under its own key.
    report = await verify(store_url, key_path)
    assert report.problem is None, report.line()
    assert (report.records, report.signed_to) == (RECORDS + 1, SIGNED)
    # The log's key still signs the head, the stranger's record included.
    app = App(store=store_url, audit_key=key_path)
    async with app:
        assert (await app.audit.checkpoint()) is not None
    report = await verify(store_url, key_path)
    assert report.problem is None and report.signed_to == RECORDS + 1


async def test_an_export_whose_window_ends_before_it_starts_is_refused(store_url, key_path):
    # It wrote an extract of nothing whose header's since was after its until (the CLI
    # refused it on its own; GET /v1/audit and the Python API did not).
    import datetime as dt

    from aiosys.errors import InvalidInput

    app = App(store=store_url, audit_key=key_path)
    async with app:
        later = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
        for since, until in ((later, later - dt.timedelta(days=1)), (later, later)):
            out = io.StringIO()
            with pytest.raises(InvalidInput, match=r"must be before until \(2026-0"):
                await app.audit.export(out, since=since, until=until)
            assert out.getvalue() == ""
        # A naive time (local) beside an aware one is compared, not a TypeError.
        with pytest.raises(InvalidInput):
            await app.audit.export(io.StringIO(), since=later, until=dt.datetime(2000, 1, 1))


async def test_a_new_log_with_no_key_yet_verifies_empty_and_exports_an_empty_extract(
    store_url, tmp_path, monkeypatch
):
    # A fresh `aiosys server`: nothing audited yet, so no default key was generated, and
    # GET /v1/audit/verify was a 500 ("no audit key to verify with"), the console's audit
    # page an error, `aiosys audit verify` exit 1. An empty log is `empty`, and its extract
    # verifies. A log with records whose key is gone is still refused (nothing to check its
    # checkpoints with).
    monkeypatch.chdir(tmp_path)  # the default key of a PostgreSQL store: ./.aiosys/
    monkeypatch.delenv("AIOSYS_AUDIT_KEY")  # the embedded default: no key until needed
    app = App(store=store_url)

    @app.workflow
    async def noop(ctx: Context) -> None:
        return None

    await app.open()
    try:
        assert not app.audit.key_path().exists()
        report = await app.audit.verify()
        assert (report.ok, report.status, report.records) == (True, "empty", 0)
        out = io.StringIO()
        await app.audit.export(out)
        checked = verify_extract(out.getvalue().splitlines(), load_verify_key(app.audit.key_path()))
        assert (checked.ok, checked.status) == (True, "empty"), checked
        await app.start("noop")  # audited: the log holds a record now
        await app.audit.checkpoint()
        assert (await app.audit.verify()).status == "intact"
        key = app.audit.key_path()
    finally:
        await app.close()
    key.unlink()
    again = App(store=store_url)
    async with again:
        with pytest.raises(ConfigError, match="no audit key to verify with"):
            await again.audit.verify()
