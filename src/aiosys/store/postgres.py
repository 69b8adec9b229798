"""The shared store: PostgreSQL through psycopg 3 (async), for workers on any number of hosts.

Connections (``_pgconn.Slot``), each serving one coroutine at a time:

- ``apply``: group commits only, so effect records never wait behind a claim or a read;
- ``claim``: claims and heartbeats;
- a few for reads and control calls (``create_run``, ``send_signal``, ``cancel``, ...);
- one that ``LISTEN``s on ``aiosys_work``, started by the first ``wait_for_work``.

A write that is one statement runs alone in autocommit mode: one round trip. A transaction
sends its statements together in pipeline mode, in one round trip unless a statement
depends on an earlier one's outcome (a parent is woken only if its child's ``Finish``
landed). Statements are prepared on first use. Under READ COMMITTED a lease check must lock
the run it checks, or a claim committing meanwhile would go unseen: ``record_effect`` locks
it, the UPDATEs lock their row, and a group commit locks all its runs first, in id order
(``lock_runs``, as heartbeats do), so concurrent writers queue instead of deadlocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row, tuple_row

from ..errors import ConfigError, StoreRefused, StoreUnavailable
from ..redact import redact
from . import _sql
from ._pgbatch import Batch, locked_ids, many_params, send_order, stands_alone
from ._pgconn import Conn, Cursor, Slot, StorableCursor, first, retrying, transaction
from ._pgprune import postgres_batch
from ._text import bind
from .base import (
    Claim,
    EffectRow,
    History,
    NewRun,
    RecordEffect,
    RunRow,
    SignalRow,
    Write,
    WriteResult,
    child_cancel_reason,
    now,
)
from .common import (
    NOT_OPEN,
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
from .prune import Step

log = logging.getLogger("aiosys.store")

MIGRATION_LOCK = 0x616975737973  # the advisory lock key held while migrating
READERS = 3  # connections for reads and control calls
SNAPSHOT = b"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
# What PostgreSQL (or psycopg, adapting a value) raises for a write refused for what it
# holds, not for the server being unavailable: 22xxx, 23xxx, 42xxx, an unencodable value.
REFUSED = (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError, ValueError)


DEFAULT_SCHEMA = "public"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _bound(statement: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    query, params = statement
    return query, bind(params)


def split_schema(url: str) -> tuple[str, str]:
    """The connection URL without aiosys's own ``schema`` query parameter, and the schema
    the store's tables live in (``?schema=aiosys``; default ``public``).

    Raises ``ConfigError`` for a schema that is not a plain lower-case SQL name (it becomes
    the connections' ``search_path``) or is given twice, and for a URL that cannot be read
    (the message names what is wrong, never the URL: it may hold a password)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"bad PostgreSQL URL: {exc}") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    if not schemas:
        return url, DEFAULT_SCHEMA
    if len(schemas) > 1 or not _SCHEMA_NAME.fullmatch(schemas[0]):
        raise ConfigError(
            f"bad PostgreSQL URL: schema={'&schema='.join(schemas)!s} is not one lower-case "
            "name (letters, digits, _; e.g. ?schema=aiosys)"
        )
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schemas[0]


class PostgresStore(CommonStore, OperatorViews):
    dialect = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url
        self._conninfo, self.schema = split_schema(url)
        try:
            info = conninfo_to_dict(self._conninfo)
        except psycopg.ProgrammingError as exc:
            # psycopg quotes the URL back: its password is masked (a store URL never reaches
            # a message, a log line or a record unmasked).
            reason = redact(" ".join(str(exc).split()))
            raise ConfigError(f"bad PostgreSQL URL: {reason}") from None
        self._password = str(info.get("password") or "")
        self._where = (
            f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"
            f" (database {info.get('dbname') or info.get('user') or 'default'}"
            f", schema {self.schema})"
        )
        self._options: dict[str, Any] = {} if "connect_timeout" in info else {"connect_timeout": 10}
        if self.schema != DEFAULT_SCHEMA:
            # Every connection resolves the store's unqualified table names in its schema.
            search_path = f"-c search_path={self.schema}"
            self._options["options"] = (
                f"{info['options']} {search_path}".strip() if info.get("options") else search_path
            )
        self._q = _sql.load_queries("postgres", paramstyle="pyformat")
        self._apply = Slot(self._connect)
        self._claim = Slot(self._connect)
        self._readers = [Slot(self._connect) for _ in range(READERS)]
        self._turn = 0
        self._closed = True
        self._work = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._skew = 0.0  # the database server's clock minus this host's (see ``clock``)
        self._host_clock = now  # this host's clock (a test gives one that is off)

    # ---- plumbing ---------------------------------------------------------------------

    async def _connect(self) -> Conn:
        if self._closed:
            raise ConfigError(NOT_OPEN)
        try:
            return await psycopg.AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                prepare_threshold=0,
                row_factory=dict_row,
                cursor_factory=StorableCursor,
                **self._options,
            )
        except psycopg.OperationalError as exc:
            reason = redact(" ".join(str(exc).split()), self._password)
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {self._where}: {reason}"
            ) from exc

    def _reader(self) -> Slot:
        """A free connection for reads and control calls, preferring one already open."""
        free = [s for s in self._readers if not s.lock.locked()]
        if free:
            return next((s for s in free if s.conn is not None), free[0])
        self._turn = (self._turn + 1) % len(self._readers)
        return self._readers[self._turn]

    async def _one(self, query: str, params: dict[str, Any]) -> list[DictRow]:
        """One statement in autocommit mode: one round trip."""
        async with self._reader().use() as conn:
            return await (await conn.execute(query, params)).fetchall()

    async def open(self) -> None:
        if not self._closed:
            return
        # Locks, events and the listener belong to the event loop that uses them: one store
        # opened again under a new loop (``asyncio.run`` twice) starts them afresh.
        self._apply = Slot(self._connect)
        self._claim = Slot(self._connect)
        self._readers = [Slot(self._connect) for _ in range(READERS)]
        self._work = asyncio.Event()
        self._listener = None
        self._closed = False
        try:
            async with self._reader().use() as conn:
                try:
                    async with conn.transaction():
                        await self._migrate(conn)
                except psycopg.errors.InsufficientPrivilege as exc:
                    reason = " ".join(str(exc).split())
                    raise ConfigError(
                        f"cannot set up the PostgreSQL store at {self._where}: {reason}; "
                        "aiosys creates its tables on first use, so its user needs CREATE there"
                    ) from None
                except psycopg.ProgrammingError as exc:  # tables of the same names, not aiosys's
                    reason = " ".join(str(exc).split())
                    raise ConfigError(
                        f"the PostgreSQL store at {self._where} is not an aiosys store "
                        f"({reason}); use a new database or another schema (?schema=name)"
                    ) from None
                except psycopg.errors.ReadOnlySqlTransaction as exc:
                    reason = " ".join(str(exc).split())
                    raise ConfigError(
                        f"the PostgreSQL store at {self._where} is read-only ({reason}); "
                        "point the store URL at the primary"
                    ) from None
                await self._read_clock(conn)
        except BaseException:
            await self.close()
            raise

    async def _migrate(self, conn: Conn) -> None:
        # Several processes may open a new database at once: one migrates, the others wait.
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        if self.schema != DEFAULT_SCHEMA:
            await conn.execute(
                psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    psycopg.sql.Identifier(self.schema)
                )
            )
        await conn.execute("CREATE TABLE IF NOT EXISTS aiosys_schema (version INTEGER PRIMARY KEY)")
        cur = await conn.execute("SELECT version FROM aiosys_schema")
        done = {r["version"] for r in await cur.fetchall()}
        for version, sql in _sql.migrations("postgres"):
            if version not in done:
                await conn.execute(sql.encode(), prepare=False)
                await conn.execute("INSERT INTO aiosys_schema (version) VALUES (%s)", (version,))

    async def close(self) -> None:
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        for slot in (self._apply, self._claim, *self._readers):
            await slot.close()

    def clock(self) -> float:
        """The database server's clock (seconds since the epoch), as this host estimates it:
        its own clock plus the offset last measured (at open and at every heartbeat, to
        within half a round trip). Leases, timers and deadlines are measured with it, so
        workers on hosts whose clocks disagree still agree on when a lease expires."""
        return self._host_clock() + self._skew

    async def _read_clock(self, conn: Conn) -> None:
        before = self._host_clock()
        cur = await conn.execute(b"SELECT extract(epoch FROM clock_timestamp())::float8 AS t")
        server = (await first(cur))["t"]
        after = self._host_clock()
        self._skew = float(server) - (before + after) / 2

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

        async with transaction(self._reader()) as tx:
            inserted = await tx.run(q["insert_run"], params)
            for query, values in also:  # pipelined: each is written only if the run exists
                await tx.run(q[query], dict(values))
            by_id = await tx.run(q["get_run"], {"id": new.id})
            by_key = await tx.run(q["get_run_by_key"], params)
            if owner is None:  # a pending run: wake idle workers, if it is new
                await tx.sync()
                if inserted.rowcount == 1:
                    await tx.run(q["notify_work"], {"queue": new.queue})
        created = inserted.rowcount == 1
        return run_row(await (by_id if created else by_key).fetchone()), created

    async def get_run(self, run_id: str, *, tenant: str | None = None) -> RunRow | None:
        rows = await self._one(self._q["get_run"], {"id": run_id})
        return self.of_tenant(run_row(rows[0]) if rows else None, tenant)

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
        return [run_row(r) for r in await self._one(self._q["list_runs"], params)]

    async def load_history(self, run_id: str) -> History | None:
        q = self._q
        async with transaction(self._reader(), SNAPSHOT) as tx:  # one snapshot
            run = await tx.run(q["get_run"], {"id": run_id})
            effects = await tx.run(q["list_effects"], {"run_id": run_id})
            signals = await tx.run(q["list_unconsumed_signals"], {"run_id": run_id})
        row = await run.fetchone()
        if row is None:
            return None
        return History(
            run=run_row(row),
            effects={e["seq"]: effect_row(e) for e in await effects.fetchall()},
            signals=[signal_row(s) for s in await signals.fetchall()],
        )

    async def list_effects(self, run_id: str, *, tenant: str | None = None) -> list[EffectRow]:
        await self.check_tenant(run_id, tenant)
        return [effect_row(r) for r in await self._one(self._q["list_effects"], {"run_id": run_id})]

    # ---- the queue ----------------------------------------------------------------------

    async def claim(self, claim: Claim) -> tuple[list[RunRow], float | None]:
        q = self._q
        # Queues with a global limit are locked in one order, so claimers never deadlock.
        capped = sorted(
            k for k, free in claim.slots.items() if free > 0 and k in claim.global_limits
        )

        async with transaction(self._claim) as tx:
            t = self.clock()
            counting: dict[str, Cursor] = {}
            for queue in capped:
                await tx.run(q["lock_queue"], {"queue": queue})
                counting[queue] = await tx.run(q["running_count"], {"queue": queue, "now": t})
            if counting:
                await tx.sync()
            running = {queue: int((await first(cur))["n"]) for queue, cur in counting.items()}
            claimed: list[Cursor] = []
            for queue, free in claim.slots.items():
                limit = self.limit_for(queue, free, claim, lambda p: running[p["queue"]], t)
                if limit > 0:
                    params = {"queue": queue, "owner": claim.owner, "now": t, "limit": limit}
                    params.update(expires=t + claim.lease, wf_keys=list(claim.wf_keys))
                    params.update(exclude=list(claim.exclude))
                    params.update(only=None if claim.only is None else list(claim.only))
                    claimed.append(await tx.run(q["claim"], params))
            nxt = await tx.run(q["next_available"], {"now": t, "queues": list(claim.slots)})
        rows = [run_row(r) for cur in claimed for r in await cur.fetchall()]
        return rows, (await first(nxt))["t"]

    async def heartbeat(
        self, owner: str, lease: float, runs: Sequence[str] | None = None
    ) -> dict[str, str | None]:
        async with self._claim.use() as conn:
            await self._read_clock(conn)
            t = self.clock()
            ids = None if runs is None else list(runs)
            params = {"owner": owner, "now": t, "expires": t + lease, "ids": ids}
            cur = await conn.execute(self._q["heartbeat"], params)
            return {r["id"]: r["cancel_reason"] for r in await cur.fetchall()}

    async def load_signals(self, run_id: str) -> list[SignalRow]:
        rows = await self._one(self._q["list_unconsumed_signals"], {"run_id": run_id})
        return [signal_row(r) for r in rows]

    async def ended(self, run_ids: Sequence[str]) -> set[str]:
        rows = await self._one(self._q["ended"], {"ids": list(run_ids)})
        return {r["id"] for r in rows}

    async def cancel_requests(self, owner: str) -> dict[str, str]:
        rows = await self._one(self._q["cancel_requests"], {"owner": owner})
        return {r["id"]: r["cancel_reason"] for r in rows}

    async def apply(self, writes: Sequence[Write]) -> list[WriteResult]:
        try:
            return await self._apply_batch(writes)
        except REFUSED as exc:
            raise refused(exc, writes) from exc

    async def _apply_batch(self, writes: Sequence[Write]) -> list[WriteResult]:
        if not writes:
            return []
        q = self._q
        if len(writes) == 1 and stands_alone(writes[0]):
            # One statement needs no transaction around it: one round trip, no pipeline.
            async with self._apply.use() as conn:
                cur = await conn.execute(*write_statement(q, writes[0], self.clock()))
            return [WriteResult(cur.rowcount == 1)]
        lone = writes[0]
        if len(writes) == 1 and isinstance(lone, RecordEffect) and lone.consume_signal is None:
            if all(query == "audit_append" for query, _ in lone.side_writes):
                return [await retrying(lambda: self._record_audited(lone))]
            return [await retrying(lambda: self._record_with_side_writes(lone))]
        order, ids = send_order(writes), locked_ids(writes)

        async def attempt() -> list[WriteResult]:
            async with transaction(self._apply) as tx:
                batch = Batch(tx, q, self.clock())
                await tx.run(q["lock_runs"], {"ids": ids})
                for i in order:
                    await batch.add(writes[i])
                await batch.end()
            return batch.results(order)

        return await retrying(attempt)

    async def _record_audited(self, w: RecordEffect) -> WriteResult:
        """A lone effect record whose side writes are its audit records only: one prepared
        statement in autocommit mode (``record_effect_audited``; several audit records:
        ``record_effect_audited_many``, with ``audit_append_many``'s rows). One round trip,
        no BEGIN or COMMIT, no statement text built on the client."""
        _, params = write_statement(self._q, w, self.clock())
        if len(w.side_writes) == 1:  # the common case: the cheaper one-record function
            query = "record_effect_audited"
            params.update(w.side_writes[0][1])
        else:
            query = "record_effect_audited_many"
            params.update(many_params([p for _, p in w.side_writes], bound=True))
        async with self._apply.use() as conn:
            cur = await conn.execute(self._q[query], params)
            return WriteResult((await first(cur))["landed"] == 1)

    async def _record_with_side_writes(self, w: RecordEffect) -> WriteResult:
        """A lone effect record with side writes (its audit record, usage rows): BEGIN, the
        lock, the record, the side writes and COMMIT as one simple-protocol query, the
        parameters bound on the client. One round trip, as a pipelined transaction, for about
        half its client CPU (a run one effect at a time makes nothing but these)."""
        q = self._q
        async with self._apply.use() as conn:
            cur = psycopg.AsyncClientCursor(conn)
            statements = [
                "BEGIN",
                cur.mogrify(q["lock_runs"], {"ids": [w.effect.run_id]}),
                cur.mogrify(*_bound(write_statement(q, w, self.clock()))),
                *(cur.mogrify(q[query], bind(dict(params))) for query, params in w.side_writes),
                "COMMIT",
            ]
            await cur.execute(";\n".join(statements).encode())
            cur.nextset()  # the lock
            cur.nextset()  # the record
            return WriteResult(cur.rowcount == 1)

    async def send_signal(
        self, run_id: str, name: str, payload: str, *, tenant: str | None = None
    ) -> None:
        await self.check_tenant(run_id, tenant)
        q = self._q
        async with transaction(self._reader()) as tx:
            t = self.clock()
            woke = await tx.run(q["wake"], {"run_id": run_id, "now": t})
            await tx.sync()
            if woke.rowcount == 1:
                params = {"run_id": run_id, "name": name, "payload": payload, "now": t}
                await tx.run(q["insert_signal"], params)
                await tx.run(q["notify_work"], {"queue": ""})
        if woke.rowcount != 1:
            await self.raise_not_active(run_id, "signal", tenant)

    async def cancel(self, run_id: str, reason: str, *, tenant: str | None = None) -> RunRow:
        await self.check_tenant(run_id, tenant)
        q = self._q

        async def attempt() -> DictRow | None:
            async with transaction(self._reader()) as tx:
                t = self.clock()
                error = self.cancel_error(reason)
                params = {"id": run_id, "reason": reason, "now": t, "error": error}
                cancelled = await tx.run(q["cancel"], params)
                await tx.sync()
                row = await cancelled.fetchone()
                if row is not None and row["status"] == "cancelled" and row["parent_id"]:
                    await tx.run(q["wake"], {"run_id": row["parent_id"], "now": t})
                if row is not None:  # its parent woke, or its worker looks for cancels
                    await tx.run(q["notify_work"], {"queue": ""})
                if row is not None:
                    why = child_cancel_reason(run_id, f"was cancelled: {reason}")
                    await tx.run(q["cancel_children"], self.cancel_children_params(run_id, why, t))
            return row

        row = await retrying(attempt)
        if row is None:
            await self.raise_not_active(run_id, "cancel", tenant)
        return run_row(row)

    async def resume(self, run_id: str, *, tenant: str | None = None) -> RunRow:
        await self.check_tenant(run_id, tenant)
        q = self._q
        async with transaction(self._reader()) as tx:
            await tx.run(q["lock_runs"], {"ids": [run_id]})
            before = await tx.run(q["get_run"], {"id": run_id})
            resumed = await tx.run(q["resume"], {"id": run_id, "now": self.clock()})
            await tx.sync()
            row = await resumed.fetchone()
            if row is not None:
                failed_seq = (await first(before))["failed_seq"]
                if failed_seq is not None:
                    await tx.run(q["delete_effect"], {"run_id": run_id, "seq": failed_seq})
                await tx.run(q["notify_work"], {"queue": row["queue"]})
        if row is None:
            await self.raise_not_resumable(run_id, tenant)
        return run_row(row)

    def lists(self, values: Sequence[str] | None) -> Any:
        return None if values is None else list(values)

    async def prune_batch(
        self, before: float, tenant: str | None, cursor: tuple[float, str], limit: int, dry: bool
    ) -> Step:
        q, slot = self._q, self._reader()
        return await retrying(lambda: postgres_batch(slot, q, before, tenant, cursor, limit, dry))

    async def fetch(
        self, query: str, params: Mapping[str, Any], *, durable: bool = True
    ) -> list[dict[str, Any]]:
        # durable=False changes nothing here: the commit waits for the server's WAL flush as
        # any other (one round trip either way).
        return [dict(r) for r in await self._one(self._q[query], dict(params))]

    async def fetch_rows(self, query: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        async with self._reader().use() as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(self._q[query], dict(params))
            return await cur.fetchall()

    async def execute(self, query: str, params: Mapping[str, Any]) -> int:
        async with self._reader().use() as conn:
            return (await conn.execute(self._q[query], dict(params))).rowcount

    async def change(
        self,
        query: str,
        params: Mapping[str, Any],
        *,
        also: Sequence[tuple[str, Mapping[str, Any]]] = (),
        wake: bool = False,
    ) -> list[dict[str, Any]]:
        # The changed rows are locked first, then the runs woken, then the audit head: the
        # order every writer takes the run and the head in (effect records, group commits).
        q = self._q

        async def attempt() -> list[dict[str, Any]]:
            async with transaction(self._reader()) as tx:
                changed = await tx.run(q[query], dict(params))
                await tx.sync()
                rows = [dict(r) for r in await changed.fetchall()]
                if rows and wake:
                    t = self.clock()
                    for run_id in sorted({r["run_id"] for r in rows}):
                        await tx.run(q["wake"], {"run_id": run_id, "now": t})
                    await tx.run(q["notify_work"], {"queue": ""})
                if rows:
                    for name, values in also:
                        await tx.run(q[name], dict(values))
            return rows

        try:
            return await retrying(attempt)
        except REFUSED as exc:
            raise StoreRefused(f"the store refused {query}: {type(exc).__name__}: {exc}") from exc

    async def execute_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        many = self._q.get(f"{query}_many")
        if many is not None and len(rows) > 1:  # one statement for all the rows
            async with self._reader().use() as conn:
                await conn.execute(many, many_params(rows))
            return len(rows)
        async with self._reader().use() as conn, conn.transaction(), conn.cursor() as cur:
            # psycopg sends the rows pipelined: one round trip for the batch
            await cur.executemany(self._q[query], [dict(r) for r in rows])
            return cur.rowcount

    async def wait_for_work(self, timeout: float) -> None:
        if self._closed:
            raise ConfigError(NOT_OPEN)
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(), name="aiosys-listen"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
            self._work.clear()

    async def _listen(self) -> None:
        """Turn notifications into ``_work`` being set, for as long as the store is open."""
        while True:
            try:
                async with await self._connect() as conn:
                    await conn.execute(b"LISTEN aiosys_work", prepare=False)
                    self._work.set()  # what was notified before LISTEN is lost: look once
                    async for _ in conn.notifies():
                        self._work.set()
            except (psycopg.Error, ConfigError) as exc:
                log.warning("listening for new work on %s failed: %s", self._where, exc)
                await asyncio.sleep(1.0)
