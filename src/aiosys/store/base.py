"""The one ``Store`` protocol, the rows it returns and the writes it applies.

A store is the system of record and the work queue. The kernel talks to it only through
this protocol; SQLite and PostgreSQL implement it and pass the same test suite.

Writes that belong to a running run (recording an effect, parking, finishing) are plain
frozen dataclasses (``Write``) that the kernel's group committer hands over in batches:
``apply`` writes a whole batch in one transaction, so many runs' effect records share one
commit. Each write is fenced by the claim's *epoch*: every claim of a run (and a start that
leases it at once) increments ``runs.epoch``, and a write carries the epoch of the claim it
works under, so it lands only while no later claim exists (another worker's, or this worker's
own after its lease lapsed). The worker id (``owner``) is kept for the logs and the lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# Statuses of a run (DESIGN.md, "Durable execution semantics").
PENDING = "pending"
RUNNING = "running"
WAITING = "waiting"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
DEAD = "dead"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, DEAD})
STATUSES = (PENDING, RUNNING, WAITING, SUCCEEDED, FAILED, CANCELLED, DEAD)


def now() -> float:
    """Wall-clock seconds since the epoch: the one clock the store's timestamps use."""
    return time.time()


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run, as stored. JSON fields are kept as text until someone needs them."""

    id: str
    workflow: str
    version: str
    tenant: str
    queue: str
    priority: int
    status: str
    input: str
    result: str | None
    error: str | None
    idempotency_key: str | None
    parent_id: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    deadline_at: float | None
    available_at: float | None
    lease_owner: str | None
    wake_seq: int
    failed_seq: int | None
    cancel_reason: str | None
    claims: int
    epoch: int  # bumped by every claim; writes of older claims are refused
    recoveries: int = 0  # claims after an expired lease (see the workflow's max_recoveries)
    detached: bool = False  # a child left alone when its parent is cancelled or times out
    # Who started it: a JSON snapshot of the principal (id, tenant, kind, roles), None for
    # the embedded default's local principal (``kernel.principal.principal_of_run``).
    principal: str | None = None
    # Set by a claim that took the run over from a worker whose lease had expired (a
    # recovery): that worker's id and when its lease expired. None after any other claim.
    recovered_from: str | None = None
    lease_expired_at: float | None = None
    # The W3C traceparent of the span the run's trace joins (a caller's, a parent run's
    # ``child_start``); None: its trace is its own (``aiosys.observe.tracing``).
    traceparent: str | None = None

    @property
    def wf_key(self) -> str:
        return wf_key(self.workflow, self.version)


def wf_key(workflow: str, version: str) -> str:
    return f"{workflow}@{version}"


RUN_COLUMNS = tuple(RunRow.__dataclass_fields__)


def child_cancel_reason(parent_id: str, why: str) -> str:
    """The cancel reason of a child cancelled with its parent: ``why`` says what the parent
    did ("was cancelled: ...", "timed out: ...")."""
    return f"its parent run {parent_id} {why}"


@dataclass(frozen=True, slots=True)
class EffectRow:
    """One recorded effect. ``status`` is ``ok``, ``error`` or ``pending`` (a parked timer,
    signal wait or child wait, whose ``output`` holds what the wait needs, e.g. its deadline)."""

    run_id: str
    seq: int
    kind: str
    name: str
    status: str
    output: str | None
    error: str | None
    attempt: int
    started_at: float
    finished_at: float | None
    meta: str | None = None  # JSON the interceptors attach: model, usage, cost, cache hit
    # The claim (``RunRow.epoch``: the run's attempt) it was last recorded under and the
    # worker that held it, set by the store from the write (None in the kernel's own copy).
    epoch: int | None = None
    worker: str | None = None


EFFECT_COLUMNS = tuple(EffectRow.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class SignalRow:
    id: int
    run_id: str
    name: str
    payload: str
    created_at: float
    consumed_seq: int | None


SIGNAL_COLUMNS = tuple(SignalRow.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class RecoveryRow:
    """One recovery of a run: a claim (``epoch``) that took it over from the worker
    ``recovered_from``, whose lease had expired at ``lease_expired_at`` (it died, hung or
    lost the store) — a gap in the run's history. Written by the claim itself."""

    run_id: str
    epoch: int
    worker: str  # the worker that took the run over
    claimed_at: float
    recovered_from: str | None
    lease_expired_at: float | None


RECOVERY_COLUMNS = tuple(RecoveryRow.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What a worker registers (``Store.beat_worker``): who it is and what it serves."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    wf_keys: tuple[str, ...]  # the workflow@version it can run
    lease: float  # seconds; it is live while its last beat is younger than LIVE_LEASES leases


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A registered worker, as stored (times in seconds since the epoch, store clock)."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    wf_keys: tuple[str, ...]
    lease: float
    started_at: float
    heartbeat_at: float
    expires_at: float  # heartbeat_at + LIVE_LEASES * lease: not live after that


# A worker is live until this many of its leases have passed since its last heartbeat (it
# beats every third of a lease, so a live worker is never near it).
LIVE_LEASES = 2.0


@dataclass(frozen=True, slots=True)
class History:
    """All a worker needs to replay a run, read at once."""

    run: RunRow
    effects: dict[int, EffectRow]
    signals: list[SignalRow]


@dataclass(frozen=True, slots=True)
class NewRun:
    id: str
    workflow: str
    version: str
    tenant: str
    queue: str
    priority: int
    input: str
    idempotency_key: str | None = None
    parent_id: str | None = None
    deadline_at: float | None = None
    created_at: float = field(default_factory=now)
    detached: bool = False  # a child that outlives its parent's cancellation or timeout
    principal: str | None = None  # who starts it (RunRow.principal)
    traceparent: str | None = None  # the span its trace joins (RunRow.traceparent)


# ---- writes applied in batches (group commit) --------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordEffect:
    """Insert or complete the effect at ``seq``; optionally mark a signal consumed by it.
    ``side_writes`` (named statements of the store's queries, with their parameters) are
    committed in the same transaction, whether or not the record lands."""

    owner: str
    effect: EffectRow
    consume_signal: int | None = None
    side_writes: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    epoch: int = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class Park:
    """Park a run: ``waiting`` until ``wake_at`` (or a wake-up if None), holding no worker.
    Only lands if nothing woke the run since the worker read ``wake_seq``."""

    owner: str
    run_id: str
    wake_at: float | None
    wake_seq: int
    epoch: int = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class Finish:
    """End a run (succeeded, failed, dead, cancelled) and wake its parent if it has one."""

    owner: str
    run_id: str
    status: str
    result: str | None = None
    error: str | None = None
    failed_seq: int | None = None
    parent_id: str | None = None
    epoch: int = field(kw_only=True)
    # Also lands on a run parked under this epoch (``waiting``, nobody claimed it since): how
    # a parked execution that swallowed its unwinding is failed.
    parked: bool = field(default=False, kw_only=True)
    # Set when the run ends cancelled or timed out: the reason its children that were not
    # started detached are cancelled with (recursively), in the same transaction.
    cancel_children: str | None = None


@dataclass(frozen=True, slots=True)
class Release:
    """Give a run back to the queue without finishing it (shutdown, lost park race)."""

    owner: str
    run_id: str
    epoch: int = field(kw_only=True)


Write = RecordEffect | Park | Finish | Release


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of one write: ``ok`` False means the lease was lost (someone else owns
    the run, or it was cancelled / woken), so the worker must stop working on it."""

    ok: bool
    cancel_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """How many runs a worker can take now, per queue, and which workflows it can run."""

    owner: str
    wf_keys: Sequence[str]
    slots: dict[str, int]  # queue -> free slots in this worker
    global_limits: dict[str, int]  # queue -> concurrency limit across all workers
    lease: float
    # Runs this worker executes right now: never claimed again by it (a worker whose lease
    # lapsed while it still runs a run must not start it a second time beside itself).
    exclude: Sequence[str] = ()
    # When set, only these runs and their children (runs whose parent_id is one of them)
    # are claimed: a worker that serves its own runs (``aiosys run``), not the queue.
    only: Sequence[str] | None = None


PRUNE_BATCH = 1000  # root runs per prune transaction (with their ended descendants)


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What ``Store.prune`` deleted (with ``dry_run``: would delete), in rows per table.

    ``before`` is the cutoff (epoch seconds: runs that ended before it); ``runs`` counts the
    runs, ``effects``, ``signals``, ``usage`` (``model_usage``), ``shadows``
    (``model_shadows``), ``cache`` (``model_cache``), ``tasks`` (``human_tasks``) and
    ``pseudonyms`` the rows of those runs, and
    ``reservations`` the expired budget reservations dropped. ``roots`` is how many runs the
    prune went through as the top of a tree (its progress; at most ``limit``)."""

    before: float
    tenant: str | None = None
    dry_run: bool = False
    runs: int = 0
    effects: int = 0
    signals: int = 0
    usage: int = 0
    shadows: int = 0
    cache: int = 0
    tasks: int = 0
    pseudonyms: int = 0
    reservations: int = 0
    roots: int = 0

    def counts(self) -> dict[str, int]:
        """The row counts by table name as above (``runs``, ``effects``, ...)."""
        return {k: getattr(self, k) for k in PRUNED}


PRUNED = (
    "runs",
    "effects",
    "signals",
    "usage",
    "shadows",
    "cache",
    "tasks",
    "pseudonyms",
    "reservations",
)


@runtime_checkable
class Store(Protocol):
    """Durable state of runs, effects and signals, and the queue workers claim from."""

    url: str
    dialect: str

    async def open(self) -> None:
        """Connect and bring the schema up to date (idempotent)."""

    def clock(self) -> float:
        """Seconds since the epoch on the store's clock: what leases, timers and run
        deadlines are measured with (SQLite: this host's; PostgreSQL: the server's)."""
        ...

    async def close(self) -> None: ...

    async def create_run(
        self,
        new: NewRun,
        *,
        owner: str | None = None,
        lease: float = 0.0,
        also: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> tuple[RunRow, bool]:
        """Insert a run (``pending``; or already ``running`` under ``owner``'s lease, for a
        worker in this process). Returns ``(run, created)``; with an idempotency key that was
        used before in the tenant, returns the existing run and ``False``. ``also``: named
        statements run in the same transaction after the insert, each written so that it
        changes nothing unless the run ``new.id`` exists (it is new, so that means created:
        the ``*_for_run`` statements)."""

    async def get_run(self, run_id: str, *, tenant: str | None = None) -> RunRow | None:
        """The run, or None if there is none in ``tenant``. Every method that reads or
        changes one run takes ``tenant``: None means any tenant (the kernel's own calls);
        a run of another tenant is reported exactly as a missing one (None, ``RunNotFound``)."""

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
        """Runs newest first (``created_at``, then ``id``, descending), of ``status``,
        ``workflow`` and ``tenant`` when given, created in ``[since, until)`` (epoch seconds),
        and after ``after``: the ``(created_at, id)`` of the last run of the page before
        (keyset pagination: a run started meanwhile neither shifts nor repeats a page)."""
        ...

    async def schema_behind(self) -> list[int]:
        """The migrations of this code the store has not applied, in order (empty: its
        schema is current; readiness). Raises what an unreachable store raises."""
        ...

    async def load_history(self, run_id: str) -> History | None:
        """The run, its effects and its unconsumed signals, in one read."""

    async def list_effects(self, run_id: str, *, tenant: str | None = None) -> list[EffectRow]:
        """A run's effects in call order; ``RunNotFound`` if the run is not in ``tenant``."""

    async def claim(self, claim: Claim) -> tuple[list[RunRow], float | None]:
        """Lease up to ``slots`` claimable runs per queue, highest priority first: pending runs,
        waiting runs whose timer is due and running runs whose lease expired. Also returns the
        earliest time anything else becomes claimable (a timer, a lease), or None."""

    async def heartbeat(
        self, owner: str, lease: float, runs: Sequence[str] | None = None
    ) -> dict[str, str | None]:
        """Extend the leases ``owner`` holds on ``runs`` (the runs it executes, whose writes
        are not stuck; None: every run it holds); return those still held (id -> cancel
        reason or None). A run leased to ``owner`` but not named is left to expire."""

    async def load_signals(self, run_id: str) -> list[SignalRow]:
        """The run's unconsumed signals, oldest first (a parked execution resumed in place
        reads only these, not the whole history)."""

    async def ended(self, run_ids: Sequence[str]) -> set[str]:
        """Which of ``run_ids`` have ended (a worker drops the parked executions of runs
        cancelled, or finished by another worker, meanwhile)."""

    async def cancel_requests(self, owner: str) -> dict[str, str]:
        """Cancel requests of the runs ``owner`` holds (id -> reason): how a worker learns of
        a cancel sent from another process before its next heartbeat."""

    async def apply(self, writes: Sequence[Write]) -> list[WriteResult]:
        """Apply a batch of writes in one transaction (group commit)."""

    async def send_signal(
        self, run_id: str, name: str, payload: str, *, tenant: str | None = None
    ) -> None:
        """Store a signal and wake the run if it waits; errors if the run has ended."""

    async def cancel(self, run_id: str, reason: str, *, tenant: str | None = None) -> RunRow:
        """Cancel a run: at once if it holds no worker, else at its next effect; and in the
        same transaction its descendants that were not started detached, the same way."""

    async def resume(self, run_id: str, *, tenant: str | None = None) -> RunRow:
        """Put a ``dead`` or ``failed`` run back in the queue, dropping the failed effect's
        record and keeping every recorded success."""

    async def wait_for_work(self, timeout: float) -> None:
        """Return when new work may be claimable (a notification) or after ``timeout``."""

    async def list_recoveries(self, run_id: str, *, tenant: str | None = None) -> list[RecoveryRow]:
        """A run's recoveries (claims of it after a worker's lease expired), oldest first;
        ``RunNotFound`` if the run is not in ``tenant``."""

    async def beat_worker(self, worker: WorkerInfo) -> None:
        """Register ``worker`` as live (insert or refresh its row; its heartbeat is now)."""

    async def drop_worker(self, worker_id: str) -> None:
        """Unregister a worker that stops; also forgets workers dead for over a day."""

    async def live_workers(self) -> list[WorkerRow]:
        """The registered workers whose heartbeat is recent enough, oldest first."""

    async def stranded_runs(
        self,
        *,
        queues: Sequence[str] | None = None,
        workflow: str | None = None,
        tenant: str | None = None,
        claimable_for: float = 0.0,
        limit: int = 50,
    ) -> list[RunRow]:
        """Runs a claim could take now (pending, waiting whose timer is due, running whose
        lease expired) that no live worker serves (none registered their workflow@version
        for their queue), claimable for at least ``claimable_for`` seconds; longest
        claimable first. With no live worker at all, every claimable run is stranded."""

    async def fetch(
        self, query: str, params: Mapping[str, Any], *, durable: bool = True
    ) -> list[dict[str, Any]]:
        """Run the named query (one statement, its own transaction); its rows as dicts.
        For the layers above the kernel (model catalog, cache, usage), whose SQL lives in
        named blocks beside the kernel's.

        ``durable=False`` (a write whose loss to a power cut the caller can bear): a store
        may commit it without waiting for the disk, as ``execute_many`` does. It is still
        committed, and seen by every other connection and process, when this returns, and a
        process crash never loses it (SQLite: WAL with ``synchronous=NORMAL``; PostgreSQL
        commits it as any other)."""

    async def fetch_rows(self, query: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """``fetch``, its rows as plain tuples in the query's column order: for bulk reads
        (the audit log's verification reads a million rows), where a dict per row costs
        more than the rest of the work."""

    async def execute(self, query: str, params: Mapping[str, Any]) -> int:
        """Run the named statement in its own transaction; the number of rows it changed."""

    async def change(
        self,
        query: str,
        params: Mapping[str, Any],
        *,
        also: Sequence[tuple[str, Mapping[str, Any]]] = (),
        wake: bool = False,
    ) -> list[dict[str, Any]]:
        """A conditional change and what goes with it, in one transaction: run the named
        statement ``query``, one that returns the rows it changed (``UPDATE ... RETURNING``,
        ``INSERT ... ON CONFLICT DO NOTHING RETURNING``); only if it returned any, run the
        named statements ``also`` (``audit_append`` records chained as ``apply`` chains them)
        and, with ``wake``, wake the run named by each row's ``run_id`` as ``send_signal``
        does (a waiting run becomes claimable at once; workers are told). The rows, as dicts:
        none means nothing was written. How the layers above complete a wait from outside
        its run (``aiosys.humans``: a task's decision wakes the run that waits for it)."""
        ...

    async def execute_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run the named statement once per row of parameters, all in one transaction (one
        commit for a batch of usage rows); the number of rows changed. For writes nobody
        waits for: a store may trade the last power-cut's worth of durability for speed
        (SQLite skips the commit's own fsync), never a process crash's."""

    async def prune(
        self,
        before: float,
        *,
        tenant: str | None = None,
        limit: int | None = None,
        dry_run: bool = False,
        batch: int = PRUNE_BATCH,
        progress: Callable[[PruneReport], None] | None = None,
    ) -> PruneReport:
        """Delete the runs that ended (succeeded, failed, cancelled, dead) before ``before``
        (epoch seconds, the store's clock) in ``tenant`` (None: every tenant), with their
        effects, signals, model usage rows, shadow outcomes, the cache entries they wrote
        and their human tasks, and drop the budget reservations that expired before it.

        A run goes with the tree it tops: a run whose parent is still stored waits for its
        parent; a pruned run's descendants that have ended go with it, whenever they ended;
        a descendant still pending, running or waiting is never deleted (nor its rows, nor
        what is below it) and is pruned on its own once it has ended long enough. Deletes in
        transactions of ``batch`` trees (oldest first), so no lock is held long; runs being
        resumed meanwhile stay; idempotent, and safe beside workers and other prunes. Stops
        after ``limit`` trees (None: all). ``dry_run`` deletes nothing and reports what would
        go. ``progress`` is called after each batch with the totals so far.

        Budgets do not forget spend: they read whole UTC days from the daily spend buckets
        (``model_spend``), which a prune leaves alone, and their periods start at UTC
        midnight. Only ``spent(since=...)`` with a ``since`` inside a day, and the usage
        reports (``aiosys models usage``), read usage rows, and lose the pruned ones.
        ``ValueError`` for a ``batch`` below 1 or a negative ``limit``."""
        ...
