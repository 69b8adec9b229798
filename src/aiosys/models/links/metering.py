"""Metering: every attempt at a deployment becomes one ``model_usage`` row.

The outermost link of the deployment chain, so it sees every outcome of the links below:

=============  =============================================  =========  ======
status         when                                           tokens     cost
=============  =============================================  =========  ======
``ok``         the provider answered                          reported   priced
``cached``     the cache answered (``response.cached``)       0          0
``error``      any failure below (provider, rate limit, ...)  0          0
``denied``     a hard budget stopped the call before it left  0          0
``cancelled``  a stream the caller left after text arrived    estimated  priced
=============  =============================================  =========  ======

A streamed call (``streaming.py``) whose text began to reach the caller used the provider
however it ends: cut short by an error it is an ``error`` row with the usage of the text
received so far, estimated; cancelled (the caller went away) a ``cancelled`` one, likewise.

A cache hit consumed nothing, so it records no tokens (its response still carries the
tokens of the original call). ``latency_ms`` is the wall time the caller waited for this
attempt, including the links below (cache lookup, rate-limit count).

Where a row goes (``UsageLog``, one per store in the process):

- inside a workflow (``call.held`` is the model effect's list) the rows of its attempts are
  committed in the same transaction as the effect's record (``EffectCall.also_write``): a
  crash keeps both or neither, and a replay, which never calls the model again, never
  meters it again. Until that commit the log *holds* them (counted as spent);
- outside one (``app.models.call`` from a script or the gateway) a row is written behind
  the call, in batches: it joins the pending rows and the caller has its answer at once;
  within ``delay`` (200 ms) the pending rows go to the store in one transaction. A commit
  per call (an fsync on SQLite) used to be the largest cost of the call path and stalled
  every call in flight while it ran. A crash loses the rows of the last ``delay`` at most.
  A row that settles a hard budget's reservation waits ``settle_delay`` (20 ms) at most:
  until it lands, the reservation holds the call's worst case (often a hundred times its
  real cost) against the budget in every process, and each live reservation is one more
  row every reservation statement sums.

Readers in this process see every row at once: the report functions below write the
pending rows first, and budgets add the held and pending spend to the stored one
(``pending_spend``); other processes see pending rows within ``delay``.

A failed batch write must not fail calls that already happened (and were paid for), but
must not vanish either: it is retried once, then logged at WARNING on the
``aiosys.models.metering`` logger with the rows as JSON (enough to re-insert them) and
counted in ``UsageLog.unrecorded``. A cancelled call (the caller went away) is not
metered, its outcome unknown, unless it is a stream whose text had begun to arrive (above).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import weakref
from collections.abc import Callable
from typing import Any

from ...errors import BudgetExceeded
from ...store.base import Store
from ..chain import DeploymentCall, NextLink
from ..streaming import streamed
from ..types import ModelResponse, Usage

log = logging.getLogger("aiosys.models.metering")

MAX_ERROR_CHARS = 2000
RETRY_DELAY = 0.05  # seconds before the one retry of a failed batch write
FLUSH_DELAY = 0.2  # seconds a row may wait for the rows after it
SETTLE_DELAY = 0.02  # the same for a row that settles a budget reservation
MAX_BATCH = 1000  # rows that start a write at once
DAY = 86400.0  # seconds: UTC days start at multiples of it
NO_USAGE = Usage()
NEW_COLUMNS: dict[str, Any] = {
    "cache_read_tokens": 0,
    "cache_write_tokens": 0,
    "reasoning_tokens": 0,
    "reservation": None,
}


class UsageLog:
    """The usage rows of one store in this process, written behind the calls in batches.

    One per store (``usage_log(store)``), shared by every metering link, budget check and
    report on that store in this process."""

    def __init__(
        self,
        store: Store,
        *,
        delay: float = FLUSH_DELAY,
        settle_delay: float = SETTLE_DELAY,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.store = store
        self.delay = delay
        self.settle_delay = min(settle_delay, delay)
        self.max_batch = max_batch
        self.unrecorded = 0  # rows that could not be written (see the module docstring)
        self._pending: list[dict[str, Any]] = []  # not yet handed to the store
        self._held: list[dict[str, Any]] = []  # to be committed with a workflow effect
        self._writing: list[dict[str, Any]] = []  # handed to the store, not yet committed
        # What each list above adds to a budget beyond the reservations (beyond_reservations),
        # kept as the lists change: a budget check would otherwise read every row per call.
        self._pending_sums = _Sums()
        self._held_sums = _Sums()
        self._writing_sums = _Sums()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of timer and task
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None

    def add(self, row: dict[str, Any]) -> None:
        """Queue one row; it reaches the store within ``delay``."""
        self._pending.append(row)
        self._pending_sums.add(row)
        self._schedule(now=len(self._pending) >= self.max_batch)

    def _schedule(self, *, now: bool = False) -> None:
        """Make sure a write comes: at once, or within ``delay`` (``settle_delay`` when a
        pending row settles a reservation)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop: the old one's timer and task died
            self._loop, self._timer, self._task, self._lock = loop, None, None, None
        if now:
            if self._timer is not None:
                self._timer.cancel()
            self._start_write()
            return
        if self._task is not None:  # the running write schedules what comes meanwhile
            return
        settles = self._pending_sums.first_expiry != math.inf  # a reserved row is pending
        due = loop.time() + (self.settle_delay if settles else self.delay)
        if self._timer is None:
            self._timer = loop.call_at(due, self._start_write)
        elif due < self._timer.when():
            self._timer.cancel()
            self._timer = loop.call_at(due, self._start_write)

    @property
    def writing(self) -> bool:
        """Rows are being written now (handed to the store, not yet committed)."""
        return bool(self._writing)

    @property
    def unwritten(self) -> bool:
        """Rows are waiting to be written, or being written (not yet committed)."""
        return bool(self._pending or self._writing)

    def hold(self, row: dict[str, Any]) -> None:
        """Count a row that a workflow effect will commit with its record (``release``
        when that transaction ends)."""
        self._held.append(row)
        self._held_sums.add(row)

    def release(self, rows: list[dict[str, Any]], committed: bool) -> None:
        """The effect's transaction ended: its rows are written, or (``committed`` False)
        they join the pending rows, to be written behind as any other."""
        held = {id(r) for r in rows}
        self._held = [r for r in self._held if id(r) not in held]
        self._held_sums = _Sums.of(self._held)
        if not committed:
            for row in rows:
                self.add(row)

    def pending_spend(self, tenant: str, workflow: str | None, since: float) -> float:
        """The cost of this tenant's (or its workflow's) rows not yet committed."""
        return sum(
            float(r["cost"])
            for r in (*self._writing, *self._pending, *self._held)
            if r["tenant"] == tenant
            and r["at"] >= since
            and (workflow is None or r["workflow"] == workflow)
        )

    def beyond_reservations(
        self, tenant: str, workflow: str | None, since: float, now: float
    ) -> float:
        """What this tenant's (or its workflow's) rows not yet committed cost beyond what
        the store counts for them. The store counts a live budget reservation until the row
        that settles it lands: a pending row (not handed to the store yet) is exactly its
        cost minus its reservation (negative when the call cost less than its worst case);
        a row being written, or held for an effect's commit, may have landed already, so it
        counts only what it costs past its reservation (never less than the truth). A row
        with no live reservation counts its whole cost.

        O(1) per list in the common case (running sums per tenant and workflow, when every
        row of the list is in the period and every reservation of it is live), else a scan."""
        total = 0.0
        for rows, sums, exact in (
            (self._pending, self._pending_sums, True),
            (self._writing, self._writing_sums, False),
            (self._held, self._held_sums, False),
        ):
            if not rows:
                continue
            if sums.first_at >= since and sums.first_expiry > now:
                found = sums.by_key.get(tenant if workflow is None else (tenant, workflow))
                if found is not None:
                    total += found[0] if exact else found[1]
                continue
            for r in rows:
                if r["tenant"] != tenant or r["at"] < since:
                    continue
                if workflow is not None and r["workflow"] != workflow:
                    continue
                cost = float(r["cost"])
                if r.get("reservation") is not None and r["reserved_until"] > now:
                    cost -= r["reserved"]
                    if not exact:
                        cost = max(0.0, cost)
                total += cost
        return total

    def _start_write(self) -> None:
        self._timer = None
        if self._task is None and self._pending:
            self._task = asyncio.get_running_loop().create_task(
                self._write_all(), name="aiosys-usage"
            )

    async def _write_all(self) -> None:
        try:
            await self.flush()
        finally:
            self._task = None
            if self._pending:  # rows came while the task ended
                self._schedule()

    async def flush(self) -> None:
        """Write every pending row now (reports call this; so does closing the plane)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one batch at a time, in order
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self._pending_sums = _Sums.of(self._pending)  # usually none are left
                self._writing, self._writing_sums = batch, _Sums.of(batch)
                try:
                    await self._write(batch)
                finally:
                    self._writing, self._writing_sums = [], _Sums()

    async def close(self) -> None:
        """Write what is pending and stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush()

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        # Rows made before the cache, reasoning and reservation columns (or by hand) lack them.
        rows = [r if "reservation" in r else {**NEW_COLUMNS, **r} for r in rows]
        # Broad on purpose: each store driver raises its own errors (sqlite3, psycopg,
        # ConfigError when closed), and none of them may turn a finished call into a failure.
        try:
            await self.store.execute_many("insert_usage", rows)
            return
        except Exception as first:
            log.info("writing %d model usage rows failed (%s); retrying once", len(rows), first)
        await asyncio.sleep(RETRY_DELAY)
        try:
            await self.store.execute_many("insert_usage", rows)
        except Exception as exc:
            self.unrecorded += len(rows)
            log.warning(
                "%d model usage rows not recorded after a retry (%s: %s): %s",
                len(rows),
                type(exc).__name__,
                exc,
                json.dumps(rows),
            )


class _Sums:
    """Running sums over a list of unwritten rows, for ``UsageLog.beyond_reservations``: per
    tenant and per (tenant, workflow), [what the rows cost beyond their reservations, the
    same with each row's part floored at 0]; the earliest ``at`` and the earliest expiry of
    a reservation among them (either may be earlier than the rows left have: only
    ever too early, which sends the reader to the exact scan)."""

    __slots__ = ("by_key", "first_at", "first_expiry")

    def __init__(self) -> None:
        self.by_key: dict[str | tuple[str, str | None], list[float]] = {}
        self.first_at = math.inf
        self.first_expiry = math.inf

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> _Sums:
        sums = cls()
        for row in rows:
            sums.add(row)
        return sums

    def add(self, row: dict[str, Any]) -> None:
        beyond = floored = float(row["cost"])
        if row.get("reservation") is not None:
            beyond -= row["reserved"]
            floored = max(0.0, beyond)
            self.first_expiry = min(self.first_expiry, row["reserved_until"])
        self.first_at = min(self.first_at, row["at"])
        tenant = row["tenant"]
        for key in (tenant, (tenant, row["workflow"])):
            found = self.by_key.get(key)
            if found is None:
                self.by_key[key] = [beyond, floored]
            else:
                found[0] += beyond
                found[1] += floored


# One log per store object: every link, budget and report on that store shares it, so a
# report sees the rows a call in this process just metered.
_logs: weakref.WeakKeyDictionary[Any, UsageLog] = weakref.WeakKeyDictionary()


def usage_log(store: Store) -> UsageLog:
    """The usage log of ``store`` in this process."""
    found = _logs.get(store)
    if found is None:
        found = _logs[store] = UsageLog(store)
    return found


async def flush_usage(store: Store) -> None:
    """Write this process's pending usage rows of ``store``, if it has any."""
    found = _logs.get(store)
    if found is not None:
        await found.flush()


class MeteringLink:
    """Records each call's tokens, cost, latency and outcome in ``model_usage``."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.log = usage_log(store)

    @property
    def unrecorded(self) -> int:
        """Rows of this store that could not be written (see the module docstring)."""
        return self.log.unrecorded

    async def __call__(self, call: DeploymentCall, next: NextLink) -> ModelResponse:
        started = time.perf_counter()
        try:
            response = await next(call)
        except BudgetExceeded as exc:
            self._record(call, started, "denied", error=_describe(exc))
            raise
        except Exception as exc:
            sink = streamed(call)
            if sink is None:
                self._record(call, started, "error", error=_describe(exc))
            else:  # text reached the caller: what it used is paid for
                used = sink.partial()
                self._record(
                    call, started, "error", usage=used.usage, cost=used.cost, error=_describe(exc)
                )
            raise
        except asyncio.CancelledError:
            sink = streamed(call)
            if sink is not None:  # the caller left a stream: metered up to where it was
                used = sink.partial()
                error = f"CancelledError: the caller went away after {len(sink.pieces)} pieces"
                self._record(
                    call, started, "cancelled", usage=used.usage, cost=used.cost, error=error
                )
            raise
        if response.cached:
            self._record(call, started, "cached")
        else:
            self._record(
                call,
                started,
                "shadow" if call.meta.get("shadow") else "ok",
                usage=response.usage,
                cost=response.cost,
            )
        return response

    def _record(
        self,
        call: DeploymentCall,
        started: float,
        status: str,
        *,
        usage: Usage = NO_USAGE,
        cost: float = 0.0,
        error: str | None = None,
    ) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        tokens = {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
        }
        call.meta["usage"] = {
            **tokens,
            "cost": cost,
            "latency_ms": latency_ms,
            "cached": status == "cached",
        }
        # The hard-budget reservation of this attempt (links/budget.py): the row settles it.
        reservation = call.meta.get("reservation")
        card = call.card
        row: dict[str, Any] = {
            "at": self.clock(),
            "tenant": call.tenant,
            "workflow": call.workflow,
            "run_id": call.run_id,
            "seq": call.seq,
            "task": call.task,
            "model": card.id,
            "deployment": card.key,
            **tokens,
            "cost": cost,
            "latency_ms": latency_ms,
            "status": status,
            "error": error,
            "reservation": None if reservation is None else reservation.id,
        }
        if reservation is not None:  # not columns: what pending_spend needs to know
            row["reserved"], row["reserved_until"] = reservation.amount, reservation.expires_at
        if call.held is not None:  # the workflow's effect commits it with its record
            call.held.append(row)
            self.log.hold(row)
        else:
            self.log.add(row)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


# ---- reading usage back ------------------------------------------------------------------


async def usage_by_run(store: Store, run_id: str) -> dict[str, Any]:
    """Tokens, cost and number of model calls of one run (every attempt, cache hits too)."""
    await flush_usage(store)
    row = (await store.fetch("usage_by_run", {"run_id": run_id}))[0]
    return {
        "input_tokens": int(row["input_tokens"]),
        "output_tokens": int(row["output_tokens"]),
        "cost": float(row["cost"]),
        "calls": int(row["calls"]),
    }


async def usage_rows(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Every metered call of one run, in order: one dict per ``model_usage`` row."""
    await flush_usage(store)
    return await store.fetch("usage_rows_of_run", {"run_id": run_id})


async def spent(
    store: Store, tenant: str, workflow: str | None = None, since: float = 0.0
) -> float:
    """What a tenant (or one of its workflows) spent on models since ``since`` (epoch
    seconds; default: ever), in the cards' currency units. Rows this process has not
    written yet are counted too."""
    pending = usage_log(store).pending_spend(tenant, workflow, since)
    # Whole UTC days come from the daily spend buckets (a trigger keeps them), the part day
    # before the first whole one from the usage rows.
    full_from = math.ceil(since / DAY) * DAY
    params = {"tenant": tenant, "since": since, "full_from": full_from}
    if workflow is None:
        rows = await store.fetch("spent_by_tenant", params)
    else:
        rows = await store.fetch("spent_by_workflow", {**params, "workflow": workflow})
    return float(rows[0]["cost"]) + pending


async def usage_by_model(store: Store, tenant: str, since: float = 0.0) -> list[dict[str, Any]]:
    """Per model of a tenant since ``since``: calls, ok / cached / error / denied counts,
    tokens, cost and mean latency of the calls that reached a provider, by model id."""
    await flush_usage(store)
    rows = await store.fetch("usage_by_model", {"tenant": tenant, "since": since})
    return [_stats(r, "model") for r in rows]


async def usage_by_workflow(store: Store, tenant: str, since: float = 0.0) -> list[dict[str, Any]]:
    """The same sums per workflow of a tenant (calls made outside a workflow: ``None``)."""
    await flush_usage(store)
    rows = await store.fetch("usage_by_workflow", {"tenant": tenant, "since": since})
    return [_stats(r, "workflow") for r in rows]


def _stats(row: dict[str, Any], by: str) -> dict[str, Any]:
    mean = row["mean_latency_ms"]
    return {
        by: row[by],
        "calls": int(row["calls"]),
        "ok": int(row["ok"]),
        "cached": int(row["cached"]),
        "errors": int(row["errors"]),
        "denied": int(row["denied"]),
        "input_tokens": int(row["input_tokens"]),
        "output_tokens": int(row["output_tokens"]),
        "cost": float(row["cost"]),
        "mean_latency_ms": None if mean is None else float(mean),
    }
