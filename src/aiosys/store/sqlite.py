"""The embedded default store: one SQLite file in WAL mode with ``synchronous=FULL``.

Statements run on the event loop's own thread while nobody else holds the file: a commit
costs one disk sync (about 0.4 ms here) and a hop to a worker thread and back cost more than
that (measured: 163 vs 67 ten-step workflows/s one at a time, 537 vs 287 with 64 in flight;
a blocked loop also lets more writes pile up for the next group commit). When another
process holds the write lock, the statement is handed to a dedicated thread that waits for
it (``busy_timeout``), so the loop never blocks on another process. Write transactions
start with ``BEGIN IMMEDIATE`` so several processes sharing the file queue on SQLite's lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError, StoreRefused
from . import DEFAULT_URL, _sql
from ._text import bind
from .base import (
    Claim,
    EffectRow,
    Finish,
    History,
    NewRun,
    RecordEffect,
    RunRow,
    SignalRow,
    Write,
    WriteResult,
    child_cancel_reason,
)
from .common import (
    CommonStore,
    effect_row,
    list_runs_params,
    refused,
    run_params,
    run_row,
    signal_row,
    write_statement,
)
from .operator import OperatorViews
from .prune import Step, sqlite_batch

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000

# What SQLite raises for a write it refuses for what it holds, not for being unavailable.
REFUSED = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError, ValueError)


class _Connection(sqlite3.Connection):
    """A connection whose statements bind their text storable (``_text.bind``)."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return super().execute(sql, bind(parameters))

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        return super().executemany(sql, [bind(p) for p in parameters])


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


SQLITE_FORM = "sqlite:///relative/path.db or sqlite:////absolute/path.db"


def sqlite_path(url: str) -> Path:
    """The file a ``sqlite:///...`` URL names: three slashes, then the path (relative to the
    current directory, or absolute with a fourth slash), as SQLAlchemy spells it.

    Raises ``ConfigError`` for any other spelling (``sqlite:/x.db``, ``sqlite:x.db``,
    ``sqlite://x.db``): read loosely, these used to name a file under a ``sqlite:`` directory,
    a new empty store that nobody meant."""
    if not url.startswith("sqlite:///"):
        raise ConfigError(f"malformed store URL {url!r}: use {SQLITE_FORM}")
    path = url.removeprefix("sqlite:///")
    if not path or path.endswith("/"):
        raise ConfigError(f"store URL {url!r} names no file: use {SQLITE_FORM}")
    return Path(path)


def create_parent(url: str) -> None:
    """Make the directory of a SQLite store URL's file (``aiosys ... --create``); nothing
    for other URLs. Raises ``ConfigError`` for a malformed SQLite URL or a directory that
    cannot be made."""
    if not url.startswith("sqlite:"):
        return
    parent = sqlite_path(url).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the directory {parent} of store {url!r}: {exc}") from None


class SQLiteStore(CommonStore, OperatorViews):
    dialect = "sqlite"

    def __init__(self, url: str, *, poll_interval: float = 0.1) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.poll_interval = poll_interval
        self._q = _sql.load_queries("sqlite")
        self._pool: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._handed_off = 0  # statements waiting on the thread for another process's lock
        self._seen_version: int | None = None  # PRAGMA data_version (wait_for_work)

    # ---- plumbing ---------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._pool is None or self._conn is None:
            raise ConfigError("the store is not open: use `async with app:` or `await app.open()`")
        conn = self._conn
        if self._handed_off == 0:  # nothing queued on the thread: run here, never waiting
            try:
                return fn(conn)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
        self._handed_off += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, self._patiently, fn, conn
            )
        finally:
            self._handed_off -= 1

    @staticmethod
    def _patiently(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            return fn(conn)
        finally:
            conn.execute("PRAGMA busy_timeout = 0")

    def _tx(
        self,
        conn: sqlite3.Connection,
        body: Callable[[sqlite3.Connection], T],
        begin: str = "BEGIN IMMEDIATE",  # raises "database is locked" before any change
    ) -> T:
        conn.execute(begin)
        try:
            out = body(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return out

    def _connect(self) -> sqlite3.Connection:
        parent = self.path.parent
        if not parent.is_dir():
            # Only the default store's own directory (./.aiosys) is made here: a missing
            # directory in a URL someone typed is more often a typo than a wish.
            if self.path != Path(DEFAULT_URL.removeprefix("sqlite:///")):
                what = (
                    "is a file, not a directory"
                    if parent.exists()
                    else "does not exist; create it (or pass --create to the aiosys command)"
                )
                raise ConfigError(f"cannot open the SQLite store at {self.path}: {parent} {what}")
        try:
            parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, factory=_Connection
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the SQLite store at {self.path}: {exc}") from None
        conn.row_factory = sqlite3.Row
        # SHA-256 for SQL (PostgreSQL has sha256()): the audit log's append hashes the chain
        # in the appending statement (sql/sqlite/audit.sql).
        conn.create_function("aiosys_sha256", 1, _sha256_hex, deterministic=True)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 0")  # see _run: never wait on the loop's thread
        return conn

    async def open(self) -> None:
        if self._conn is not None:
            return
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aiosys-sqlite")
        loop = asyncio.get_running_loop()
        try:
            self._conn = await loop.run_in_executor(self._pool, self._connect)
            await self._run(self._migrate)
        except sqlite3.DatabaseError as exc:  # not a database, or not one of ours
            await self.close()
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise ConfigError(
                    f"the SQLite store at {self.path} is read-only ({exc}); aiosys writes to "
                    "its store: make the file and its directory writable, or use another"
                ) from None
            raise ConfigError(
                f"{self.path} is not an aiosys SQLite store ({exc}); point the store URL "
                "at a new file or at one aiosys created"
            ) from None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        def body(c: sqlite3.Connection) -> None:
            c.execute("CREATE TABLE IF NOT EXISTS aiosys_schema (version INTEGER PRIMARY KEY)")
            # Changes nothing, but SQLite refuses it at once on a read-only file or mount,
            # so a read-only store is reported at open, not at the first write of a run.
            c.execute("DELETE FROM aiosys_schema WHERE 0")
            done = {r[0] for r in c.execute("SELECT version FROM aiosys_schema")}
            for version, sql in _sql.migrations("sqlite"):
                if version not in done:
                    for statement in _statements(sql):
                        c.execute(statement)
                    c.execute("INSERT INTO aiosys_schema (version) VALUES (?)", (version,))

        self._tx(conn, body)

    async def close(self) -> None:
        if self._pool is None:
            return
        conn, pool = self._conn, self._pool
        # Closed first, for every statement asked from now on (``_run``: "not open"): one
        # asked while the close below runs on the thread ran on the event loop's thread
        # beside it, on a connection being freed, and crashed the process (a segfault in
        # ``executemany``, a write-behind flush at shutdown).
        self._conn = None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(pool, conn.close)
        pool.shutdown(wait=True)
        self._pool = None

    # ---- runs ---------------------------------------------------------------------------

    async def create_run(
        self,
        new: NewRun,
        *,
        owner: str | None = None,
        lease: float = 0.0,
        also: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> tuple[RunRow, bool]:
        q = self._q
        params = run_params(new, owner, lease)

        def body(c: sqlite3.Connection) -> tuple[RunRow, bool]:
            created = c.execute(q["insert_run"], params).rowcount == 1
            if created:  # (known here: the guard of a `_for_run` statement is not needed)
                audit = [v for query, v in also if query in _AUDIT_APPENDS]
                for query, values in also:
                    if query not in _AUDIT_APPENDS:
                        c.execute(q[query], dict(values))
                if audit:
                    self._append_audit(c, audit)
                row = c.execute(q["get_run"], {"id": new.id}).fetchone()
            else:
                row = c.execute(q["get_run_by_key"], params).fetchone()
            return run_row(row), created

        return await self._run(lambda c: self._tx(c, body))

    async def get_run(self, run_id: str, *, tenant: str | None = None) -> RunRow | None:
        row = await self._run(lambda c: c.execute(self._q["get_run"], {"id": run_id}).fetchone())
        return self.of_tenant(run_row(row) if row else None, tenant)

    async def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        tenant: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[RunRow]:
        params = list_runs_params(status, workflow, tenant, since, until, after, limit)
        rows = await self._run(lambda c: c.execute(self._q["list_runs"], params).fetchall())
        return [run_row(r) for r in rows]

    async def load_history(self, run_id: str) -> History | None:
        q = self._q

        def read(c: sqlite3.Connection) -> History | None:
            c.execute("BEGIN")  # one snapshot for the three reads
            try:
                run = c.execute(q["get_run"], {"id": run_id}).fetchone()
                if run is None:
                    return None
                effects = c.execute(q["list_effects"], {"run_id": run_id}).fetchall()
                signals = c.execute(q["list_unconsumed_signals"], {"run_id": run_id}).fetchall()
            finally:
                c.execute("COMMIT")
            return History(
                run=run_row(run),
                effects={e["seq"]: effect_row(e) for e in effects},
                signals=[signal_row(s) for s in signals],
            )

        return await self._run(read)

    async def list_effects(self, run_id: str, *, tenant: str | None = None) -> list[EffectRow]:
        await self.check_tenant(run_id, tenant)
        rows = await self._run(
            lambda c: c.execute(self._q["list_effects"], {"run_id": run_id}).fetchall()
        )
        return [effect_row(r) for r in rows]

    # ---- the queue ----------------------------------------------------------------------

    async def claim(self, claim: Claim) -> tuple[list[RunRow], float | None]:
        q = self._q
        wf_keys = json.dumps(list(claim.wf_keys))
        exclude = json.dumps(list(claim.exclude))
        only = None if claim.only is None else json.dumps(list(claim.only))
        queues = json.dumps(list(claim.slots))

        def body(c: sqlite3.Connection) -> tuple[list[RunRow], float | None]:
            t = self.clock()
            out: list[RunRow] = []
            for queue, free in claim.slots.items():
                limit = self.limit_for(queue, free, claim, lambda p: _count(c, q, p), t)
                if limit <= 0:
                    continue
                rows = c.execute(
                    q["claim"],
                    {
                        "queue": queue,
                        "owner": claim.owner,
                        "now": t,
                        "expires": t + claim.lease,
                        "wf_keys": wf_keys,
                        "exclude": exclude,
                        "only": only,
                        "limit": limit,
                    },
                ).fetchall()
                out.extend(run_row(r) for r in rows)
            nxt = c.execute(q["next_available"], {"now": t, "queues": queues}).fetchone()
            return out, nxt["t"]

        return await self._run(lambda c: self._tx(c, body))

    async def heartbeat(
        self, owner: str, lease: float, runs: Sequence[str] | None = None
    ) -> dict[str, str | None]:
        q = self._q
        ids = None if runs is None else json.dumps(list(runs))

        def body(c: sqlite3.Connection) -> dict[str, str | None]:
            t = self.clock()
            params = {"owner": owner, "now": t, "expires": t + lease, "ids": ids}
            rows = c.execute(q["heartbeat"], params)
            return {r["id"]: r["cancel_reason"] for r in rows.fetchall()}

        return await self._run(lambda c: self._tx(c, body))

    async def load_signals(self, run_id: str) -> list[SignalRow]:
        sql = self._q["list_unconsumed_signals"]
        rows = await self._run(lambda c: c.execute(sql, {"run_id": run_id}).fetchall())
        return [signal_row(r) for r in rows]

    async def ended(self, run_ids: Sequence[str]) -> set[str]:
        sql, ids = self._q["ended"], json.dumps(list(run_ids))
        rows = await self._run(lambda c: c.execute(sql, {"ids": ids}).fetchall())
        return {r["id"] for r in rows}

    async def cancel_requests(self, owner: str) -> dict[str, str]:
        sql = self._q["cancel_requests"]
        rows = await self._run(lambda c: c.execute(sql, {"owner": owner}).fetchall())
        return {r["id"]: r["cancel_reason"] for r in rows}

    async def apply(self, writes: Sequence[Write]) -> list[WriteResult]:
        q = self._q

        def body(c: sqlite3.Connection) -> list[WriteResult]:
            t = self.clock()
            results: list[WriteResult] = []
            audit: list[Mapping[str, Any]] = []  # the batch's audit records, appended last
            for w in writes:
                ok = c.execute(*write_statement(q, w, t)).rowcount == 1
                if isinstance(w, RecordEffect):
                    for query, params in w.side_writes:
                        if query == "audit_append":
                            audit.append(params)
                        else:
                            c.execute(q[query], dict(params))
                if ok and isinstance(w, RecordEffect) and w.consume_signal is not None:
                    c.execute(q["consume_signal"], {"id": w.consume_signal, "seq": w.effect.seq})
                elif ok and isinstance(w, Finish) and w.parent_id:
                    c.execute(q["wake"], {"run_id": w.parent_id, "now": t}).fetchall()
                if ok and isinstance(w, Finish) and w.cancel_children:
                    params = self.cancel_children_params(w.run_id, w.cancel_children, t)
                    c.execute(q["cancel_children"], params).fetchall()
                results.append(WriteResult(ok))
            if audit:
                self._append_audit(c, audit)
            return results

        try:
            return await self._run(lambda c: self._tx(c, body))
        except REFUSED as exc:
            raise refused(exc, writes) from exc

    async def send_signal(
        self, run_id: str, name: str, payload: str, *, tenant: str | None = None
    ) -> None:
        await self.check_tenant(run_id, tenant)
        q = self._q

        def body(c: sqlite3.Connection) -> bool:
            t = self.clock()
            woke = c.execute(q["wake"], {"run_id": run_id, "now": t}).fetchall()
            if not woke:
                return False
            params = {"run_id": run_id, "name": name, "payload": payload, "now": t}
            c.execute(q["insert_signal"], params)
            return True

        if not await self._run(lambda c: self._tx(c, body)):
            await self.raise_not_active(run_id, "signal", tenant)

    async def cancel(self, run_id: str, reason: str, *, tenant: str | None = None) -> RunRow:
        await self.check_tenant(run_id, tenant)
        q = self._q

        def body(c: sqlite3.Connection) -> Any:
            t = self.clock()
            params = {"id": run_id, "reason": reason, "now": t, "error": self.cancel_error(reason)}
            row = c.execute(q["cancel"], params).fetchone()
            if row is not None and row["status"] == "cancelled" and row["parent_id"]:
                c.execute(q["wake"], {"run_id": row["parent_id"], "now": t}).fetchall()
            if row is not None:
                why = child_cancel_reason(run_id, f"was cancelled: {reason}")
                c.execute(q["cancel_children"], self.cancel_children_params(run_id, why, t))
            return row

        row = await self._run(lambda c: self._tx(c, body))
        if row is None:
            await self.raise_not_active(run_id, "cancel", tenant)
        return run_row(row)

    async def resume(self, run_id: str, *, tenant: str | None = None) -> RunRow:
        await self.check_tenant(run_id, tenant)
        q = self._q

        def body(c: sqlite3.Connection) -> Any:
            before = c.execute(q["get_run"], {"id": run_id}).fetchone()
            row = c.execute(q["resume"], {"id": run_id, "now": self.clock()}).fetchone()
            if row is not None and before["failed_seq"] is not None:
                c.execute(q["delete_effect"], {"run_id": run_id, "seq": before["failed_seq"]})
            return row

        row = await self._run(lambda c: self._tx(c, body))
        if row is None:
            await self.raise_not_resumable(run_id, tenant)
        return run_row(row)

    def lists(self, values: Sequence[str] | None) -> Any:
        return None if values is None else json.dumps(list(values))

    async def prune_batch(
        self, before: float, tenant: str | None, cursor: tuple[float, str], limit: int, dry: bool
    ) -> Step:
        def body(c: sqlite3.Connection) -> Step:
            return sqlite_batch(c, self._q, before, tenant, cursor, limit, dry)

        if dry:  # one read snapshot (WAL): writers go on meanwhile
            return await self._run(lambda c: self._tx(c, body, "BEGIN"))
        return await self._run(lambda c: self._tx(c, body))

    async def fetch(
        self, query: str, params: Mapping[str, Any], *, durable: bool = True
    ) -> list[dict[str, Any]]:
        sql, args = self._q[query], dict(params)

        def run(c: sqlite3.Connection) -> list[sqlite3.Row]:
            return c.execute(sql, args).fetchall()

        rows = await self._run(run if durable else lambda c: _unsynced(c, run))
        return [dict(r) for r in rows]

    async def fetch_rows(self, query: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        sql = self._q[query]

        def read(c: sqlite3.Connection) -> list[tuple[Any, ...]]:
            cur = c.cursor()
            cur.row_factory = None  # plain tuples
            return cur.execute(sql, bind(dict(params))).fetchall()

        return await self._run(read)

    async def execute(self, query: str, params: Mapping[str, Any]) -> int:
        sql = self._q[query]
        return await self._run(
            lambda c: self._tx(c, lambda c: c.execute(sql, dict(params)).rowcount)
        )

    async def change(
        self,
        query: str,
        params: Mapping[str, Any],
        *,
        also: Sequence[tuple[str, Mapping[str, Any]]] = (),
        wake: bool = False,
    ) -> list[dict[str, Any]]:
        q, args = self._q, dict(params)

        def body(c: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = [dict(r) for r in c.execute(q[query], args).fetchall()]
            if not rows:
                return rows
            audit = [v for name, v in also if name in _AUDIT_APPENDS]
            for name, values in also:
                if name not in _AUDIT_APPENDS:
                    c.execute(q[name], dict(values))
            if wake:
                t = self.clock()
                for run_id in {r["run_id"] for r in rows}:
                    c.execute(q["wake"], {"run_id": run_id, "now": t}).fetchall()
            if audit:
                self._append_audit(c, audit)
            return rows

        try:
            return await self._run(lambda c: self._tx(c, body))
        except REFUSED as exc:
            raise StoreRefused(f"the store refused {query}: {type(exc).__name__}: {exc}") from exc

    def _append_audit(self, c: sqlite3.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Append ``audit_append``'s records (``digest``, ``tenant``, ``at``, ``body``) in
        order, in the open write transaction: the head read once, the chain hashed here as
        ``audit_append`` hashes it in SQL, one ``executemany`` (a third of the CPU of one
        ``audit_append`` per record, measured here)."""
        q = self._q
        seq, prev = c.execute(q["audit_head"]).fetchone()
        chained = []
        for row in rows:
            seq += 1
            digest = row["digest"]
            hash_ = _sha256_hex(f"{prev}|{seq}|{digest}")
            chained.append((seq, prev, hash_, digest, row["tenant"], row["at"], row["body"]))
            prev = hash_
        # Bound as they are, past ``_Connection``'s ``bind``: an audit record's text is made
        # storable before it is hashed (``AuditRecord.params``), and the rest is hex.
        sqlite3.Connection.executemany(c, q["audit_insert"], chained)
        return len(chained)

    async def execute_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        sql, batch = self._q[query], [dict(r) for r in rows]

        def write(c: sqlite3.Connection) -> int:
            if query == "audit_append":  # chained here, in one statement (_append_audit)
                return self._append_audit(c, batch)
            return c.executemany(sql, batch).rowcount

        def body(c: sqlite3.Connection) -> int:
            # A write nobody waits for (usage rows): committed without its own fsync (see
            # _unsynced). It saves the sync (~40% of a batch here), and running it on a
            # thread instead measured worse (more CPU per call, a higher p95).
            return _unsynced(c, lambda c: self._tx(c, write))

        return await self._run(body)

    async def wait_for_work(self, timeout: float) -> None:
        """Return when another connection (another process) has committed since the last
        return, or after ``timeout`` seconds. SQLite has no notifications across processes:
        ``PRAGMA data_version``, which changes exactly when another connection commits, is
        read every ``poll_interval`` seconds (a few microseconds). Work started in this
        process wakes the worker at once through the worker's own event, and a timer or a
        lease coming due through the claim loop's own deadline (``next_available``), not
        through here. So an idle server claims once per ``timeout`` (the worker's idle
        poll), not at every ``poll_interval``: each claim is a transaction of several
        statements on the event loop's thread, which a request waits behind."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        if self._seen_version is None:
            self._seen_version = await self._run(_data_version)
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(left, self.poll_interval))
            version = await self._run(_data_version)
            if version != self._seen_version:
                self._seen_version = version
                return


#: Statements that append audit records: chained in Python in a batch (``_append_audit``).
_AUDIT_APPENDS = frozenset({"audit_append", "audit_append_for_run"})


def _unsynced(c: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn``'s commit without its own fsync: WAL with ``synchronous=NORMAL`` keeps it
    through a process crash (it is in the WAL, which other connections read at once), and
    the next FULL commit (any run's record) syncs it with its own, since the WAL is written
    in order; only a power cut before then can lose it."""
    c.execute("PRAGMA synchronous = NORMAL")
    try:
        return fn(c)
    finally:
        c.execute("PRAGMA synchronous = FULL")


def _data_version(c: sqlite3.Connection) -> int:
    return int(c.execute("PRAGMA data_version").fetchone()[0])


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _count(c: sqlite3.Connection, q: dict[str, str], params: dict[str, Any]) -> int:
    return int(c.execute(q["running_count"], params).fetchone()["n"])


def _statements(sql: str) -> list[str]:
    """The statements of a migration, in order. A trigger's body holds semicolons of its
    own: pieces are joined until SQLite says the statement is complete."""
    code = re.sub(r"--[^\n]*", "", sql)  # the schema's comments may hold semicolons
    statements: list[str] = []
    buffer = ""
    for piece in code.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n\t;"):
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \n\t;"):
        statements.append(buffer.strip())
    return statements
