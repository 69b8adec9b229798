#!/usr/bin/env python
"""Kernel throughput: aiosys against DBOS Transact, measured in the same run.

The workload is a 10-step workflow of trivial async steps (``x -> x + 1``), executed in
process by an embedded worker. Four cells:

    {SQLite (WAL, synchronous=FULL), PostgreSQL} x {N runs one at a time, M runs K in flight}

Each (cell, system) pair runs in its own subprocess against a fresh database (a new SQLite
file in a temp dir on the same disk as the repo, or a new PostgreSQL database created and
dropped around the child), so neither system's global state, caches or threads leak into
the other's numbers. Every result is checked (``x + 10``). CPU per step is the child's own
process CPU time (all its threads) over the timed section divided by steps; the PostgreSQL
server's CPU is not included.

Governance (``--governance``): ``off`` (the default) runs aiosys with no audit log
(``AIOSYS_AUDIT=off``), no lineage (``AIOSYS_LINEAGE=off``), no policies and the local
principal. ``on`` runs it with lineage (each effect's input hashes) and the audit log on (checkpoints signed with a generated Ed25519 key), 50 Cedar policies (the shipped
``examples/policies`` plus generated ``forbid`` policies that never match) and every run
started as a non-local service principal with roles {operator}: the built-in roles check
and a ``start_workflow`` decision on every start, the bench's step declared ``read_data``
on a ``Dataset`` so each step is authorized too, and every start, effect and decision
audited. The child reports the decisions made (a listener on the engine) and the audit
records written (counted in the database) over the timed section. ``both`` measures
aiosys off and on in each cell (DBOS still once) and prints their ratio against the
target (on >= 70% of off's throughput), PASS or FAIL per cell.

Observability (``--observe``): ``off`` runs aiosys with tracing off (``AIOSYS_TRACING=off``),
``on`` with tracing to the store (a span per run and per effect, kept with the effect's
record) and metrics scraped (``App.metrics()``, computed from the store) once a second in the
same process during the timed section; governance is off in both (no audit log, no
policies, the local principal). ``both`` measures aiosys off and on in each cell and prints
their ratio against the target (on >= 85% of off's throughput), PASS or FAIL per cell.
``--governance both`` runs with tracing off on both sides, so it measures governance alone.

DBOS on SQLite is given the same durability settings as aiosys: the file is created in WAL
mode before DBOS opens it and every connection DBOS opens runs ``PRAGMA synchronous=FULL``
(both read back and reported). ``--dbos-sqlite-journal delete`` measures DBOS's out-of-box
rollback journal instead.

    .venv/bin/python bench/kernel.py
    .venv/bin/python bench/kernel.py --only sqlite --profile
    .venv/bin/python bench/kernel.py --only postgres --skip-dbos --profile --profiler pyinstrument
    .venv/bin/python bench/kernel.py --governance both --skip-dbos --skip-wakes --repeat 3
    .venv/bin/python bench/kernel.py --observe both --skip-dbos --skip-wakes --repeat 3

Results are printed as a table and written to bench/results/kernel-<timestamp>.json. Then
``bench/wakes.py`` measures wake-ups (timer overshoot, cross-process signal latency, CPU per
wake as a run's history grows; ``--skip-wakes`` leaves it out).
"""

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import _version, git_state, make_profiler, profile_rows
from _common import run_child as _run_child

STEPS_PER_WORKFLOW = 10
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
#: ``--governance both``: governance on must keep this share of the throughput with it off.
GOVERNANCE_TARGET = 0.70
#: ``--observe both``: tracing and metrics on must keep this share of it with them off.
OBSERVE_TARGET = 0.85
#: ``--observe on``: seconds between two metrics scrapes during the timed section.
SCRAPE_EVERY = 1.0


# =========================================================================================
# The timed loop, shared by both systems
# =========================================================================================


async def drive(run_one: Any, mode: str, runs: int, inflight: int, base: int) -> dict[str, Any]:
    """Run ``runs`` workflows (inputs base, base+1, ...), serially or ``inflight`` at a time;
    check every result; return wall and CPU time of the whole batch."""
    latencies: list[float] = []

    async def timed(x: int) -> None:
        t = time.perf_counter()
        result = await run_one(x)
        latencies.append(time.perf_counter() - t)
        if result != x + STEPS_PER_WORKFLOW:
            raise AssertionError(f"workflow({x}) returned {result!r}, expected {x + 10}")

    cpu0, wall0 = time.process_time(), time.perf_counter()
    if mode == "serial":
        for i in range(runs):
            await timed(base + i)
    else:
        sem = asyncio.Semaphore(inflight)

        async def gated(x: int) -> None:
            async with sem:
                await timed(x)

        await asyncio.gather(*(gated(base + i) for i in range(runs)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    latencies.sort()
    steps = runs * STEPS_PER_WORKFLOW
    return {
        "runs": runs,
        "steps": steps,
        "wall_s": wall,
        "cpu_s": cpu,
        "wf_per_s": runs / wall,
        "steps_per_s": steps / wall,
        "cpu_s_per_step": cpu / steps,
        "cpu_utilisation": cpu / wall,
        "latency_p50_ms": 1000 * latencies[len(latencies) // 2],
        "latency_p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "verified": True,
    }


# =========================================================================================
# Children: one system, one cell, one fresh database
# =========================================================================================


def child_aiosys(spec: dict[str, Any]) -> dict[str, Any]:
    from aiosys import App, Context
    from aiosys.kernel import Principal

    governed = spec.get("governance") == "on"
    if governed:  # audit on with a generated key, ~50 Cedar policies
        gov: dict[str, Any] = {
            "audit": True,
            "audit_key": spec["audit_key"],
            "policies_dir": spec["policies_dir"],
        }
    else:  # audit off (AIOSYS_AUDIT=off too), no policies
        gov = {"audit": False, "policies_dir": "", "lineage": False}
    app = App(store=spec["url"], concurrency=max(64, spec["inflight"]), **gov)

    @app.step(name="inc")
    async def inc(x: int) -> int:
        return x + 1

    @app.workflow()
    async def ten(ctx: Context, x: int) -> int:
        for _ in range(STEPS_PER_WORKFLOW):
            x = await inc(x)
        return x

    async def run_one(x: int) -> Any:
        return await app.run("ten", {"x": x})

    decisions = {"all": 0, "allow": 0, "cached": 0}

    def count_decision(d: Any) -> None:
        decisions["all"] += 1
        decisions["allow"] += d.allowed
        decisions["cached"] += d.cached

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {
            "system": "aiosys",
            "version": _version("aiosys"),
            "governance": spec.get("governance", "off"),
        }
        async with app:
            if spec["backend"] == "sqlite":
                out["sqlite_settings"] = await _aiosys_sqlite_settings(app)
            principal: Any = None
            if governed:
                assert app.policy is not None and app.authorizer is not None
                # Plain steps are not policy-checked unless declared: declare the bench's
                # step, so every step is authorized (read_data on a Dataset).
                app.authorizer.declare_step(
                    "inc",
                    "read_data",
                    ("Dataset", "bench-input", {"classification": "internal", "tenant": "bench"}),
                )
                app.policy.listen(count_decision)
                out["policies"] = len(app.policy.policies)
                principal = Principal(
                    id="bench-svc", tenant="bench", kind="service", roles={"operator"}
                )
            bound = app.as_principal(principal) if governed else contextlib.nullcontext()
            with bound:
                await drive(run_one, spec["mode"], spec["warmup"], spec["inflight"], 1_000_000)
                seq0 = await asyncio.to_thread(_audit_tally, spec["url"], None)
                before = dict(decisions)
                scrapes: list[float] = []
                scraper = (
                    asyncio.get_running_loop().create_task(_scrape(app, scrapes))
                    if spec.get("observe") == "on"
                    else None
                )
                server0 = await asyncio.to_thread(_pg_server_cpu, spec["url"])
                try:
                    timed = await drive(run_one, spec["mode"], spec["runs"], spec["inflight"], 0)
                finally:
                    if scraper is not None:
                        scraper.cancel()
                        await asyncio.gather(scraper, return_exceptions=True)
                out.update(timed)
                server1 = await asyncio.to_thread(_pg_server_cpu, spec["url"])
                if server0 is not None and server1 is not None:
                    # Backends that lived through the timed section (the store's pool).
                    used = sum(server1[p] - server0[p] for p in server1.keys() & server0.keys())
                    out["server_cpu_ms_per_step"] = (
                        used * 1000 / (spec["runs"] * STEPS_PER_WORKFLOW)
                    )
                if scraper is not None:
                    out["scrapes"] = {"n": len(scrapes), "max_s": max(scrapes, default=0.0)}
                if governed:
                    out["decisions"] = {k: decisions[k] - before[k] for k in decisions}
                    out["audit"] = await asyncio.to_thread(_audit_tally, spec["url"], seq0)
                if spec["profile"]:
                    prof = make_profiler(spec["profiler"])
                    prof.enable() if spec["profiler"] == "cprofile" else prof.start()
                    try:
                        pres = await drive(
                            run_one, spec["mode"], spec["runs"], spec["inflight"], 2_000_000
                        )
                    finally:
                        prof.disable() if spec["profiler"] == "cprofile" else prof.stop()
                    out["profile"] = profile_rows(
                        spec["profiler"], prof, 25, Path(spec["profile_base"])
                    )
                    out["profile"]["profiled_wf_per_s"] = pres["wf_per_s"]
        # After close (background appends awaited, the last checkpoint signed): every record.
        out["audit_total"] = _audit_tally(spec["url"], 0)
        return out

    return asyncio.run(main())


async def _scrape(app: Any, took: list[float]) -> None:
    """Scrape the app's metrics once a second (the first at once), as Prometheus would;
    each scrape's duration appended to ``took``."""
    while True:
        t0 = time.perf_counter()
        text = await app.metrics()
        assert "aiosys_runs" in text, "the scrape holds no run series"
        took.append(time.perf_counter() - t0)
        await asyncio.sleep(SCRAPE_EVERY)


def _pg_server_cpu(url: str) -> dict[int, float] | None:
    """CPU seconds (user + system) of each PostgreSQL backend serving ``url``'s database,
    by pid, read from /proc (the server runs on this machine); None on SQLite or when
    /proc cannot be read."""
    if url.startswith("sqlite:///"):
        return None
    import psycopg

    with psycopg.connect(url) as conn:
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            ).fetchall()
        ]
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out or None


def _audit_tally(url: str, after: int | None) -> Any:
    """The audit log as the database holds it, read on a connection of its own: with
    ``after`` None, the last record's position (0 for none); else the records after that
    position, by action and decision or outcome, and the signed checkpoints in all."""

    def rows(conn: Any, mark: str) -> tuple[list[Any], int]:
        if after is None:
            return [conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_log").fetchone()], 0
        found = conn.execute(
            f"SELECT body FROM audit_log WHERE seq > {mark} ORDER BY seq", (after,)
        ).fetchall()
        return found, conn.execute("SELECT COUNT(*) FROM audit_checkpoints").fetchone()[0]

    if url.startswith("sqlite:///"):
        conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            found, checkpoints = rows(conn, "?")
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            found, checkpoints = rows(conn, "%s")
    if after is None:
        return int(found[0][0])
    by: dict[str, int] = {}
    for (body,) in found:
        record = json.loads(body)
        key = f"{record.get('action')}:{record.get('decision') or record.get('outcome')}"
        by[key] = by.get(key, 0) + 1
    return {
        "records": len(found),
        "by_action": dict(sorted(by.items())),
        "checkpoints": checkpoints,
    }


async def _aiosys_sqlite_settings(app: Any) -> dict[str, Any]:
    """Read the pragmas back from the store's own connection (a private hook; best effort)."""
    try:
        return dict(
            await app.store._run(
                lambda c: {
                    "journal_mode": c.execute("PRAGMA journal_mode").fetchone()[0],
                    "synchronous": c.execute("PRAGMA synchronous").fetchone()[0],
                }
            )
        )
    except Exception as exc:  # the store's internals moved: say so rather than guess
        return {"error": f"could not read pragmas: {exc!r}"}


def child_dbos(spec: dict[str, Any]) -> dict[str, Any]:
    import logging

    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    if spec["backend"] == "sqlite":
        db_path = spec["url"].removeprefix("sqlite:///")
        if spec["dbos_sqlite_journal"] == "wal":
            # journal_mode=WAL is persistent: set it on the fresh file before DBOS opens it.
            c = sqlite3.connect(db_path)
            c.execute("PRAGMA journal_mode=WAL")
            c.close()

        @event.listens_for(Pool, "connect")
        def _full_sync(dbapi_conn: Any, _record: Any) -> None:
            if isinstance(dbapi_conn, sqlite3.Connection):
                dbapi_conn.execute("PRAGMA synchronous=FULL")

    from dbos import DBOS

    @DBOS.step()
    async def inc(x: int) -> int:
        return x + 1

    @DBOS.workflow()
    async def ten(x: int) -> int:
        for _ in range(STEPS_PER_WORKFLOW):
            x = await inc(x)
        return x

    DBOS(
        config={
            "name": "bench-kernel",
            "system_database_url": spec["url"],
            "log_level": "WARNING",
        }
    )
    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS.launch()

    async def run_one(x: int) -> Any:
        handle = await DBOS.start_workflow_async(ten, x)
        return await handle.get_result()

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {"system": "dbos", "version": _version("dbos")}
        await drive(run_one, spec["mode"], spec["warmup"], spec["inflight"], 1_000_000)
        out.update(await drive(run_one, spec["mode"], spec["runs"], spec["inflight"], 0))
        return out

    try:
        out = asyncio.run(main())
        from dbos import _dbos

        engine = _dbos._dbos_global_instance._sys_db.engine  # type: ignore[union-attr]
        out["sys_db_pool_size"] = getattr(engine.pool, "size", lambda: None)()
        if spec["backend"] == "sqlite":
            with engine.connect() as conn:
                out["sqlite_settings"] = {
                    "journal_mode": conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
                    "synchronous": conn.exec_driver_sql("PRAGMA synchronous").scalar(),
                }
    finally:
        DBOS.destroy()
    return out


def child_main(spec_json: str, out_path: str) -> None:
    spec = json.loads(spec_json)
    fn = child_aiosys if spec["system"] == "aiosys" else child_dbos
    result = fn(spec)
    Path(out_path).write_text(json.dumps(result))


# =========================================================================================
# Parent: databases, subprocesses, table, JSON
# =========================================================================================


class PG:
    def __init__(self, admin_url: str) -> None:
        import psycopg

        self.admin_url = admin_url
        self.conn = psycopg.connect(admin_url, autocommit=True)

    def url(self, db: str) -> str:
        return self.admin_url.rsplit("/", 1)[0] + "/" + db

    def create(self, db: str) -> str:
        self.drop(db)
        self.conn.execute(f'CREATE DATABASE "{db}"')
        return self.url(db)

    def drop(self, db: str) -> None:
        self.conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    def info(self) -> dict[str, Any]:
        out = {"server_version": self.conn.execute("SHOW server_version").fetchone()[0]}
        for s in (
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "commit_delay",
            "max_connections",
        ):
            out[s] = self.conn.execute(f"SHOW {s}").fetchone()[0]
        return out


def aiosys_backend_available(backend: str) -> str | None:
    """None if aiosys can open this backend, else why not."""
    if backend == "sqlite":
        return None
    try:
        if importlib.util.find_spec("aiosys.store.postgres") is None:
            return "aiosys.store.postgres does not exist yet"
    except Exception as exc:
        return f"aiosys.store.postgres: {exc!r}"
    probe = subprocess.run(
        [sys.executable, "-c", "import aiosys.store.postgres as m; m.PostgresStore"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if probe.returncode != 0:
        return "aiosys.store.postgres is not importable: " + probe.stderr.strip().splitlines()[-1]
    return None


def run_child(spec: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    gov, obs = spec.get("governance"), spec.get("observe")
    tag = f"-gov-{gov}" if gov else f"-obs-{obs}" if obs else ""
    name = f"{spec['system']}{tag}-{spec['backend']}-{spec['mode']}"
    # Governance off: no audit log, no policies (the environment says so too, so nothing
    # in the child's environment or working directory turns either on). Governance measured
    # with tracing off on both sides; observability with governance off on both sides.
    env: dict[str, str] = {}
    if gov == "off" or obs is not None:
        env.update({"AIOSYS_AUDIT": "off", "AIOSYS_POLICIES_DIR": "", "AIOSYS_LINEAGE": "off"})
    if gov is not None:
        env["AIOSYS_TRACING"] = "off"
    if obs is not None:
        env["AIOSYS_TRACING"] = obs
    return _run_child(
        Path(__file__).resolve(), spec, workdir / f"{name}.json", workdir, timeout, env or None
    )


#: Policies in the governed runs' set: the shipped example's plus generated ones.
POLICIES = 50


def governance_material(tmp: Path) -> tuple[Path, Path, int]:
    """The governed children's audit key (a fresh Ed25519 PEM) and policy directory (the
    shipped ``examples/policies`` plus ``forbid`` policies that never match the bench's
    requests, ``POLICIES`` in all): ``(key, directory, policies)``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = tmp / "audit_key.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    directory = tmp / "policies"
    shutil.copytree(REPO / "examples" / "policies", directory)
    shipped = sum(f.read_text().count("@id(") for f in directory.glob("*.cedar"))
    (directory / "generated.cedar").write_text(_never_matching(POLICIES - shipped))
    return key, directory, POLICIES


def _never_matching(n: int) -> str:
    """``n`` forbid policies on the actions the bench asks (``read_data``,
    ``start_workflow``) and others, each conditioned on a tenant or role the bench's
    principal does not have, so Cedar evaluates them all and none decides."""
    actions = ("read_data", "start_workflow", "call_model", "use_connector", "export")
    out = []
    for i in range(n):
        action = actions[i % len(actions)]
        level = ("public", "internal", "confidential", "restricted")[i % 4]
        cond = (
            f'principal.tenant == "tenant-{i}" && !principal.roles.contains("role-{i}")'
            if action == "start_workflow"
            else f'principal.tenant == "tenant-{i}" && '
            f'context.classification in Classification::"{level}"'
        )
        out.append(
            f'@id("never-{i}")\nforbid(principal, action == Action::"{action}", resource)\n'
            f"when {{ {cond} }};\n"
        )
    return "\n".join(out)


def environment(
    args: argparse.Namespace, pg_info: dict[str, Any] | None, tmp: Path
) -> dict[str, Any]:
    return {
        "timestamp": dt.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite_version": sqlite3.sqlite_version,
        "aiosys_version": _version("aiosys"),
        "dbos_version": _version("dbos"),
        **git_state(REPO),
        "tmpdir": str(tmp),
        "tmpdir_same_device_as_repo": os.stat(tmp).st_dev == os.stat(REPO).st_dev,
        "postgres": pg_info,
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
    }


def _median_rep(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """The repetition with the median throughput (the lower middle one for an even count);
    any failed repetition makes the cell fail."""
    failed = [r for r in reps if "error" in r]
    if failed:
        return failed[0]
    ordered = sorted(reps, key=lambda r: r["wf_per_s"])
    best = dict(ordered[(len(ordered) - 1) // 2])
    best["repetitions"] = len(reps)
    best["wf_per_s_all"] = [r["wf_per_s"] for r in reps]
    profile = next((r["profile"] for r in reps if "profile" in r), None)
    if profile is not None:
        best["profile"] = profile
    return best


def print_table(console: Any, cells: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from rich.table import Table

    def num(r: dict[str, Any] | None, key: str, fmt: str) -> str:
        if r is None:
            return "[dim]skipped[/]"
        if "error" in r:
            return "[red]n/a[/]"
        return format(r[key], fmt)

    if args.governance == "on":
        key, what = "aiosys_gov", "governance on"
    elif args.observe == "on":
        key, what = "aiosys_obs", "tracing and metrics on"
    elif args.observe is not None:
        key, what = "aiosys", "tracing off"
    else:
        key, what = "aiosys", "governance off"
    t = Table(
        title=f"Kernel throughput: 10-step workflow of trivial async steps, in process "
        f"(serial = {args.runs_serial} runs one at a time; concurrent = "
        f"{args.runs_concurrent} runs, {args.inflight} in flight; aiosys {what})",
        title_justify="left",
    )
    t.add_column("cell")
    t.add_column("aiosys wf/s", justify="right")
    t.add_column("aiosys steps/s", justify="right")
    t.add_column("DBOS wf/s", justify="right")
    t.add_column("DBOS steps/s", justify="right")
    t.add_column("aiosys/DBOS", justify="right", style="bold")
    t.add_column("aiosys CPU ms/step", justify="right")
    t.add_column("DBOS CPU ms/step", justify="right")
    t.add_column("CPU ratio DBOS/aiosys", justify="right")
    for c in cells:
        a, d = c.get(key), c.get("dbos")
        ok_a = a is not None and "error" not in a
        ok_d = d is not None and "error" not in d
        ratio = f"{a['wf_per_s'] / d['wf_per_s']:.2f}x" if ok_a and ok_d else "-"
        cpu_ratio = f"{d['cpu_s_per_step'] / a['cpu_s_per_step']:.2f}x" if ok_a and ok_d else "-"
        a_cpu = "-" if not ok_a else f"{1000 * a['cpu_s_per_step']:.3f}"
        d_cpu = "-" if not ok_d else f"{1000 * d['cpu_s_per_step']:.3f}"
        t.add_row(
            c["cell"],
            num(a, "wf_per_s", ",.1f"),
            num(a, "steps_per_s", ",.0f"),
            num(d, "wf_per_s", ",.1f"),
            num(d, "steps_per_s", ",.0f"),
            ratio,
            a_cpu,
            d_cpu,
            cpu_ratio,
        )
    console.print(t)


def print_governance(console: Any, cells: list[dict[str, Any]]) -> list[str]:
    """The on/off table of ``--governance both``; returns the cells below the target."""
    return print_on_off(
        console,
        cells,
        "aiosys_gov",
        f"aiosys with identity, policy and audit on vs off (target: on >= "
        f"{100 * GOVERNANCE_TARGET:.0f}% of off's throughput in every cell)",
        GOVERNANCE_TARGET,
        extra={
            "decisions/run": lambda on: f"{on['decisions']['all'] / on['runs']:.1f}",
            "audit records/run": lambda on: f"{on['audit']['records'] / on['runs']:.1f}",
        },
    )


def print_on_off(
    console: Any,
    cells: list[dict[str, Any]],
    key: str,
    title: str,
    target: float,
    extra: dict[str, Any] | None = None,
) -> list[str]:
    """An on/off table (``key``: the on side's results, ``extra``: more columns, each a
    function of the on side's result); returns the cells below ``target``."""
    from rich.table import Table

    extra = extra or {}
    t = Table(title=title, title_justify="left")
    names = ["cell", "wf/s off", "wf/s on", "on/off", "CPU ms/step off", "CPU ms/step on"]
    names += ["server CPU ms/step off", "server CPU ms/step on"]
    for name in names:
        t.add_column(name, justify="left" if name == "cell" else "right")
    for name in extra:
        t.add_column(name, justify="right")
    t.add_column("verdict", justify="center")
    failing = []
    for c in cells:
        off, on = c.get("aiosys"), c.get(key)
        if not off or not on or "error" in off or "error" in on:
            t.add_row(c["cell"], *["-"] * (7 + len(extra)), "[red]n/a[/]")
            failing.append(c["cell"])
            continue
        ratio = on["wf_per_s"] / off["wf_per_s"]
        ok = ratio >= target
        if not ok:
            failing.append(c["cell"])
        t.add_row(
            c["cell"],
            f"{off['wf_per_s']:,.1f}",
            f"{on['wf_per_s']:,.1f}",
            f"{100 * ratio:.0f}%",
            f"{1000 * off['cpu_s_per_step']:.3f}",
            f"{1000 * on['cpu_s_per_step']:.3f}",
            *(
                f"{side['server_cpu_ms_per_step']:.3f}" if "server_cpu_ms_per_step" in side else "-"
                for side in (off, on)
            ),
            *(column(on) for column in extra.values()),
            "[green]PASS[/]" if ok else "[red]FAIL[/]",
        )
    console.print(t)
    return failing


def print_profile(console: Any, cell: str, prof: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    title = (
        f"aiosys profile, {cell}: {prof['profiler']}, top 25 by cumulative time "
        f"(profiled pass {prof['profiled_wf_per_s']:.1f} wf/s; total {prof['total_s']:.2f}s)"
    )
    t = Table(title=title, title_justify="left")
    if "ncalls" in (prof["cumulative"][0] if prof["cumulative"] else {}):
        t.add_column("ncalls", justify="right")
        t.add_column("tottime", justify="right")
    t.add_column("cumtime", justify="right")
    t.add_column("%", justify="right")
    t.add_column("function  file:line", overflow="fold")
    for r in prof["cumulative"]:
        pct = r.get("pct", 100 * r["cumtime"] / prof["total_s"] if prof["total_s"] else 0)
        cells = [f"{r['cumtime']:.3f}", f"{pct:.1f}", escape(r["func"])]
        if "ncalls" in r:
            cells = [str(r["ncalls"]), f"{r['tottime']:.3f}", *cells]
        t.add_row(*cells)
    console.print(t)
    t2 = Table(title=f"aiosys profile, {cell}: top 15 by own time", title_justify="left")
    t2.add_column("own s", justify="right")
    t2.add_column("function  file:line", overflow="fold")
    for r in prof["own"]:
        t2.add_row(f"{r['tottime']:.3f}", escape(r["func"]))
    console.print(t2)
    for k in ("prof_file", "tree_file"):
        if k in prof:
            console.print(f"[dim]{k}: {prof[k]}[/]")


def parent_main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    # Wide enough for the table when piped to a file (rich falls back to 80 columns).
    console = Console(width=None if sys.stdout.isatty() else 150)
    backends = [args.only] if args.only else ["sqlite", "postgres"]
    # (result key, system, governance, observe): aiosys once or twice (off, on), DBOS once.
    both = {"off": ["off"], "on": ["on"], "both": ["off", "on"]}
    governance = both[args.governance]
    variants: list[tuple[str, str, str | None, str | None]]
    if args.observe is not None:
        if args.governance != "off":
            console.print("[red]--observe and --governance on/both measure one thing each[/]")
            return 2
        governance = []
        variants = [
            ("aiosys" if o == "off" else "aiosys_obs", "aiosys", None, o)
            for o in both[args.observe]
        ]
    else:
        variants = [
            ("aiosys" if g == "off" else "aiosys_gov", "aiosys", g, None) for g in governance
        ]
    if not args.skip_dbos:
        variants.append(("dbos", "dbos", None, None))
    systems = [key for key, *_ in variants]
    modes = [("serial", args.runs_serial), ("concurrent", args.runs_concurrent)]

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    tmp = Path(tempfile.mkdtemp(prefix=f".kernel-{stamp}-", dir=RESULTS_DIR))
    pg: PG | None = None
    pg_info = None
    if "postgres" in backends:
        try:
            pg = PG(args.pg_admin_url)
            pg_info = pg.info()
        except Exception as exc:
            console.print(f"[red]PostgreSQL unavailable at {args.pg_admin_url}: {exc}[/]")
            backends.remove("postgres")
    unavailable = {b: aiosys_backend_available(b) for b in backends}
    for b, why in unavailable.items():
        if why:
            console.print(f"[yellow]aiosys {b} cells skipped: {why}[/]")

    env = environment(args, pg_info, tmp)
    audit_key = policies = None
    if "on" in governance:
        audit_key, policies, env["governance_policies"] = governance_material(tmp)
    console.print(
        f"[bold]bench/kernel.py[/]  aiosys {env['aiosys_version']} (git {env['git_head']}"
        f"{', src dirty' if env['git_dirty'] else ''})  DBOS {env['dbos_version']}  "
        f"Python {env['python']}  SQLite {env['sqlite_version']}  "
        f"PostgreSQL {pg_info['server_version'] if pg_info else '-'}  {env['cpus']} CPUs"
    )
    cells: list[dict[str, Any]] = []
    jobs = [
        (b, m, n, v, r)
        for b in backends
        for m, n in modes
        for r in range(args.repeat)
        for v in variants
    ]
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("starting", total=len(jobs))
            for backend, mode, runs, (key, system, gov, obs), rep in jobs:
                label = f"{'SQLite' if backend == 'sqlite' else 'Postgres'} {mode}"
                cell = next((c for c in cells if c["cell"] == label), None)
                if cell is None:
                    cell = {
                        "cell": label,
                        "backend": backend,
                        "mode": mode,
                        "runs": runs,
                        "inflight": 1 if mode == "serial" else args.inflight,
                    }
                    cells.append(cell)
                who = (
                    f"{system} gov {gov}"
                    if gov is not None
                    else f"{system} obs {obs}"
                    if obs is not None
                    else system
                )
                progress.update(task, description=f"{label}: {who}")
                if system == "aiosys" and unavailable.get(backend):
                    cell[key] = {"system": system, "error": unavailable[backend]}
                    cell.setdefault(f"{key}_reps", [])
                    progress.advance(task)
                    continue
                db = f"bench_{key}_{mode}_{stamp.replace('-', '_')}_{rep}"
                if backend == "sqlite":
                    url = f"sqlite:///{tmp / (db + '.db')}"
                else:
                    assert pg is not None
                    url = pg.create(db)
                spec = {
                    "system": system,
                    "backend": backend,
                    "mode": mode,
                    "url": url,
                    "runs": runs,
                    "inflight": args.inflight,
                    "warmup": args.warmup,
                    "profile": args.profile and system == "aiosys" and rep == 0,
                    "profiler": args.profiler,
                    "profile_base": str(RESULTS_DIR / f"kernel-{stamp}-{backend}-{mode}"),
                    "dbos_sqlite_journal": args.dbos_sqlite_journal,
                }
                if gov is not None:
                    spec["governance"] = gov
                    spec["audit_key"] = str(audit_key)
                    spec["policies_dir"] = str(policies)
                    spec["profile_base"] += f"-gov-{gov}"
                if obs is not None:
                    spec["observe"] = obs
                    spec["profile_base"] += f"-obs-{obs}"
                try:
                    res = run_child(spec, tmp, args.timeout)
                finally:
                    if backend == "postgres" and pg is not None and not args.keep_dbs:
                        pg.drop(db)
                res["url"] = url
                reps = cell.setdefault(f"{key}_reps", [])
                reps.append(res)
                cell[key] = _median_rep(reps)
                if "error" in res:
                    progress.console.print(f"[red]{label} {who} failed:[/]\n{res['error']}")
                else:
                    extra = ""
                    if "sqlite_settings" in res:
                        s = res["sqlite_settings"]
                        extra = (
                            f"  (journal_mode={s.get('journal_mode')}, "
                            f"synchronous={s.get('synchronous')})"
                        )
                    if "decisions" in res:  # governance on: show that it really ran
                        d, a = res["decisions"], res["audit"]
                        extra += (
                            f"\n  {'':<22} {'':<13} governance: {res['policies']} policies, "
                            f"{d['all']} decisions ({d['allow']} allowed, {d['cached']} cached), "
                            f"{a['records']} audit records {a['by_action']}, "
                            f"{res['audit_total']['checkpoints']} checkpoints signed"
                        )
                    if "scrapes" in res:  # observability on: the scrapes that ran
                        extra += (
                            f"\n  {'':<22} {'':<13} metrics: {res['scrapes']['n']} scrapes "
                            f"(longest {1000 * res['scrapes']['max_s']:.0f} ms)"
                        )
                    progress.console.print(
                        f"  {label:<22} {who:<13} #{rep + 1} {res['wf_per_s']:8.1f} wf/s  "
                        f"{res['steps_per_s']:8.0f} steps/s  "
                        f"{1000 * res['cpu_s_per_step']:.3f} CPU ms/step  "
                        f"p50 {res['latency_p50_ms']:.1f} ms  load {res['loadavg_before'][0]:.1f}"
                        f"{extra}"
                    )
                progress.advance(task)
            progress.update(task, description="done")
    finally:
        if not args.keep_dbs:
            shutil.rmtree(tmp, ignore_errors=True)
        if pg is not None:
            pg.conn.close()

    console.print()
    print_table(console, cells, args)
    console.print(
        "[dim]CPU = the benchmark process's CPU time (all threads) over the timed section / "
        "steps; PostgreSQL server CPU not included. SQLite: WAL + synchronous=FULL for both "
        f"systems (DBOS journal: {args.dbos_sqlite_journal}). Each cell: fresh database, "
        f"{args.warmup} warm-up runs, then timed"
        + (f"; median of {args.repeat} interleaved repetitions" if args.repeat > 1 else "")
        + ".[/]"
    )
    below: list[str] = []
    if args.governance == "both":
        console.print()
        below = print_governance(console, cells)
        console.print(
            "[dim]off: AIOSYS_AUDIT=off, AIOSYS_LINEAGE=off, no policies, runs started by the "
            "local principal. on: lineage (input hashes per effect), audit log (generated "
            f"Ed25519 checkpoint key), {POLICIES} Cedar policies "
            "(examples/policies + never-matching forbids), every run started as a service "
            "principal with roles {operator} (roles check + start_workflow decision) and its "
            "step declared read_data on a Dataset (a decision per step); decisions and audit "
            "records counted over the timed section.[/]"
        )
    observe_below: list[str] = []
    if args.observe == "both":
        console.print()
        observe_below = print_on_off(
            console,
            cells,
            "aiosys_obs",
            f"aiosys with tracing and metrics on vs off (target: on >= "
            f"{100 * OBSERVE_TARGET:.0f}% of off's throughput in every cell)",
            OBSERVE_TARGET,
        )
        console.print(
            "[dim]off: AIOSYS_TRACING=off. on: a span per run and per effect kept in the "
            f"store, and App.metrics() scraped every {SCRAPE_EVERY:g} s during the timed "
            "section. Governance off on both sides (no audit log, no policies).[/]"
        )
    if args.profile:
        for c in cells:
            for key, what in (
                ("aiosys", ""),
                ("aiosys_gov", " (governance on)"),
                ("aiosys_obs", " (observability on)"),
            ):
                prof = (c.get(key) or {}).get("profile")
                if prof:
                    console.print()
                    print_profile(console, c["cell"] + what, prof)

    out = RESULTS_DIR / f"kernel-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "environment": env,
                "cells": cells,
                "governance_below_target": below,
                "observe_below_target": observe_below,
            },
            indent=2,
        )
    )
    console.print(f"\n[dim]results: {out.relative_to(REPO)}[/]")
    if not args.skip_wakes:
        # Wake-ups (bench/wakes.py): timer overshoot, cross-process signals, CPU per wake.
        console.print()
        wake_args = ["--pg-admin-url", args.pg_admin_url]
        if args.only:
            wake_args += ["--only", args.only]
        subprocess.run([sys.executable, str(BENCH_DIR / "wakes.py"), *wake_args], check=False)
    failed = [
        (c["cell"], s)
        for c in cells
        for s in systems
        if isinstance(c.get(s), dict) and "error" in c[s] and not unavailable.get(c["backend"])
    ]
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs-serial", type=int, default=200)
    p.add_argument("--runs-concurrent", type=int, default=640)
    p.add_argument("--inflight", type=int, default=64)
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each (cell, system) N times, interleaved; report the median",
    )
    p.add_argument("--warmup", type=int, default=10, help="untimed runs per cell before timing")
    p.add_argument("--only", choices=["sqlite", "postgres"])
    p.add_argument("--skip-dbos", action="store_true")
    p.add_argument(
        "--governance",
        choices=["off", "on", "both"],
        default="off",
        help="aiosys with identity, policy and audit off (default), on, or both: each cell "
        "measured off and on, with an on/off table against the 70%% target (doubles "
        "aiosys's run time)",
    )
    p.add_argument(
        "--observe",
        choices=["off", "on", "both"],
        default=None,
        help="aiosys with tracing and metrics off, on, or both: each cell measured off and "
        "on, with an on/off table against the 85%% target (governance off on both sides)",
    )
    p.add_argument(
        "--skip-wakes", action="store_true", help="leave out the wake-up figures (bench/wakes.py)"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after the timed pass, profile one more pass of each aiosys cell",
    )
    p.add_argument("--profiler", choices=["cprofile", "pyinstrument"], default="cprofile")
    p.add_argument(
        "--dbos-sqlite-journal",
        choices=["wal", "delete"],
        default="wal",
        help="DBOS SQLite journal mode: wal (as aiosys) or delete (DBOS's default)",
    )
    p.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per child process")
    p.add_argument("--keep-dbs", action="store_true", help="keep the databases for inspection")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    p.add_argument("--_out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


if __name__ == "__main__":
    a = parse_args()
    if a._child:
        child_main(a._child, a._out)
    else:
        with contextlib.suppress(KeyboardInterrupt):
            sys.exit(parent_main(a))
