"""Stats per workflow and per model over a window of time, computed by SQL over the store.

``read_stats(store, since=..., until=..., tenant=..., workflow=..., model=...)`` answers
``aiosys stats`` and ``app.stats(...)`` (which scope it to the bound principal's tenant).
The window is ``[since, until)`` in epoch seconds on the store's clock.

Per workflow (``WorkflowStats``), from the runs that *ended* in the window (succeeded, failed,
dead or cancelled: ``runs.finished_at`` in the window):

- ``runs`` and how they ended; ``throughput_per_min``: runs ended per minute of the window;
  ``error_rate``: the share that ended ``failed`` or ``dead`` (cancelled runs count in the
  denominator, not as errors);
- ``latency``: p50/p95/p99 and mean, in seconds, from the run's first start to its end;
- ``time_to_resolution``: the same from the run's creation (its start request) to its end,
  queueing and waits included;
- ``transient_failures``: failed attempts the kernel classified transient (every retry
  follows one, plus the effects that ended in a transient error once retries ran out);
  ``permanent_failures``: effects that ended in a permanent error; ``retries_per_run``:
  attempts beyond the first, per run (the effects of the runs that ended in the window,
  read through a partial index of the retried or failed ones only);
- ``cost_per_completed_run``: the model cost metered in the window for the workflow's calls
  (those of its failed runs included) per run that succeeded in it: what a completed run
  costs (None when none succeeded);
- ``dead_letter_backlog``: runs ``dead`` now, whenever they died (not windowed);
- ``human_reviews``: the workflow's human tasks a person decided in the window (by their
  ``decided_at``, whether or not their run has ended; an SLA that ended a task with nobody
  deciding is no review); ``without_human_edit``: the share of them approved as they were,
  neither edited nor rejected: how often people accept what the workflow put before them
  (None when there was no review: a workflow without human tasks).

Per model (``ModelStats``), from the ``model_usage`` rows (one per call to a deployment,
cache hits and budget denials included) metered in the window: ``calls`` and how they went,
``latency_ms`` percentiles of the calls that reached a provider (status ``ok``: cache hits
and failures are not timed), ``throughput_per_min`` (calls per minute of the window),
``error_rate`` (errors and denials per call), failures split into transient and permanent by
the error's class name (``TRANSIENT_ERRORS``; a denial is permanent), tokens, ``cost`` and
``cost_per_inference`` (cost per call that returned an answer: ok or cached).

Percentiles are nearest-rank: the value at 1-based rank ``ceil(q * n)`` of the ``n`` values
in order (numpy's ``method="inverted_cdf"``, PostgreSQL's ``percentile_disc``). SQLite has no
percentile function: each percentile is one ``ORDER BY value LIMIT 1 OFFSET ceil(q * n) - 1``
query that an index on (workflow or model, value) answers without sorting
(``sql/sqlite/stats.sql``, migration 0018). A percentile is always one of the observed
values, so both stores give numpy's exact answer.
"""

from __future__ import annotations

import builtins
import inspect
import math
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from .. import errors as aiosys_errors
from ..durations import parse_before, utc_iso
from ..errors import InvalidInput
from ..store import Store

QUANTILES = (0.5, 0.95, 0.99)


def _transient_names() -> frozenset[str]:
    """Class names of the errors retry treats as transient: aiosys's ``TransientError``
    family and the builtin timeouts and connection errors."""
    names = {
        n
        for n, c in vars(aiosys_errors).items()
        if inspect.isclass(c) and issubclass(c, aiosys_errors.TransientError)
    }
    names |= {
        n
        for n, c in vars(builtins).items()
        if inspect.isclass(c) and issubclass(c, TimeoutError | ConnectionError)
    }
    return frozenset(names)


#: Error class names a model call's failure counts as transient by (``model_usage.error``
#: keeps ``"Type: message"``); any other is permanent.
TRANSIENT_ERRORS = _transient_names()


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Nearest-rank percentiles and the mean of a set of values (None when it is empty).
    Seconds for runs, milliseconds for model calls."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None


@dataclass(frozen=True, slots=True)
class WorkflowStats:
    """One workflow over the window (see the module docstring for each field)."""

    workflow: str
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    throughput_per_min: float = 0.0
    error_rate: float | None = None
    latency: Percentiles = field(default_factory=Percentiles)
    time_to_resolution: Percentiles = field(default_factory=Percentiles)
    retries_per_run: float | None = None
    transient_failures: int = 0
    permanent_failures: int = 0
    cost_per_completed_run: float | None = None
    dead_letter_backlog: int = 0
    human_reviews: int = 0
    without_human_edit: float | None = None


@dataclass(frozen=True, slots=True)
class ModelStats:
    """One model over the window (see the module docstring for each field)."""

    model: str
    calls: int = 0
    ok: int = 0
    cached: int = 0
    errors: int = 0
    denied: int = 0
    throughput_per_min: float = 0.0
    error_rate: float | None = None
    latency_ms: Percentiles = field(default_factory=Percentiles)
    transient_failures: int = 0
    permanent_failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    cost_per_inference: float | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    """What ``read_stats`` found: the window (epoch seconds), the tenant it covers (None:
    every tenant), the filters, one entry per workflow and per model, by name."""

    since: float
    until: float
    tenant: str | None
    workflow: str | None
    model: str | None
    workflows: list[WorkflowStats]
    models: list[ModelStats]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``aiosys stats --json``): the fields above, nested."""
        return asdict(self)

    def of_workflow(self, name: str) -> WorkflowStats | None:
        """The entry of workflow ``name``, or None when it has none in the window."""
        return next((w for w in self.workflows if w.workflow == name), None)

    def of_model(self, name: str) -> ModelStats | None:
        """The entry of model ``name``, or None when it made no call in the window."""
        return next((m for m in self.models if m.model == name), None)


def window_start(since: str | float | timedelta, now: float, *, until: bool = False) -> float:
    """The epoch seconds a window starts at: ``since`` as a duration back from ``now``
    (``"24h"``, ``"7d"``, or a ``timedelta``), an ISO 8601 date/time (``"2026-11-01"``, UTC
    without an offset) or epoch seconds (a number). ``InvalidInput`` naming the forms
    otherwise, or for a start that is not before ``now`` (the window's end: the caller's
    ``until`` when ``until`` is true, which the message names)."""
    if isinstance(since, timedelta):
        start = now - since.total_seconds()
    elif isinstance(since, str):
        try:
            start = parse_before(since, now)
        except ValueError as exc:
            raise InvalidInput(f"since: {exc}") from None
    elif isinstance(since, int | float) and not isinstance(since, bool):
        start = float(since)
    else:
        raise InvalidInput(
            f"since must be a duration (24h), an ISO 8601 time, a timedelta or epoch seconds, "
            f"not {type(since).__name__}"
        )
    if not start < now:
        end = f"until ({utc_iso(now)})" if until else "now"
        raise InvalidInput(f"since ({since!r}) must be before {end}: the window would be empty")
    return start


async def read_stats(
    store: Store,
    *,
    since: float,
    until: float,
    tenant: str | None = None,
    workflow: str | None = None,
    model: str | None = None,
) -> Stats:
    """Stats of ``tenant`` (None: every tenant) over ``[since, until)`` (epoch seconds), of
    one ``workflow`` (the models' calls made by it too) or ``model`` when named. No scoping
    or check here: callers pass the tenant the principal may read (``App.stats``).
    ``ValueError`` if ``until`` is not after ``since``."""
    if not until > since:
        raise ValueError(f"the window must end after it starts (since {since}, until {until})")
    params: dict[str, Any] = {
        "since": float(since),
        "until": float(until),
        "tenant": tenant,
        "workflow": workflow,
    }
    minutes = (until - since) / 60.0
    usage = await store.fetch("stats_usage", params)
    workflows = await _workflows(store, params, minutes, usage)
    models = await _models(store, params, minutes, usage, model)
    return Stats(since, until, tenant, workflow, model, workflows, models)


async def _at_ranks(store: Store, query: str, params: dict[str, Any], n: int) -> list[Any]:
    """SQLite: the values at the percentiles' nearest ranks among ``n`` (1-based
    ``ceil(q * n)``, at least 1), one ``ORDER BY ... LIMIT 1 OFFSET`` query each; from the
    top (``<query>_desc``) when the rank is in the upper half, so the index walk is short."""
    out = []
    for q in QUANTILES:
        offset = max(1, math.ceil(q * n)) - 1
        name = query
        if offset > n // 2:
            name, offset = f"{query}_desc", n - 1 - offset
        rows = await store.fetch(name, {**params, "offset": offset})
        out.append(rows[0]["value"] if rows else None)
    return out


async def _workflows(
    store: Store, params: dict[str, Any], minutes: float, usage: list[dict[str, Any]]
) -> list[WorkflowStats]:
    runs = {r["workflow"]: r for r in await store.fetch("stats_runs", params)}
    effects = {r["workflow"]: r for r in await store.fetch("stats_run_effects", params)}
    dead = {r["workflow"]: int(r["dead"]) for r in await store.fetch("stats_dead_backlog", params)}
    reviews = {r["workflow"]: r for r in await store.fetch("stats_human_reviews", params)}
    cost: dict[str, float] = {}
    for u in usage:
        if u["workflow"] is not None:
            cost[u["workflow"]] = cost.get(u["workflow"], 0.0) + float(u["cost"] or 0.0)
    out = []
    for name in sorted(set(runs) | set(dead) | set(reviews)):
        r, e, h = runs.get(name), effects.get(name), reviews.get(name)
        reviewed = int(h["reviews"]) if h else 0
        n = int(r["runs"]) if r else 0
        succeeded = int(r["succeeded"]) if r else 0
        failed = int(r["failed"]) if r else 0
        retries = int(e["retries"] or 0) if e else 0
        latency = resolution = Percentiles()
        if r is not None:
            if store.dialect == "sqlite":
                one = {**params, "workflow": name}
                r["latency"] = await _at_ranks(store, "stats_run_latency_at", one, n)
                r["resolution"] = await _at_ranks(store, "stats_run_resolution_at", one, n)
            latency, resolution = _percentiles(r, "latency"), _percentiles(r, "resolution")
        out.append(
            WorkflowStats(
                workflow=name,
                runs=n,
                succeeded=succeeded,
                failed=failed,
                cancelled=int(r["cancelled"]) if r else 0,
                throughput_per_min=n / minutes,
                error_rate=failed / n if n else None,
                latency=latency,
                time_to_resolution=resolution,
                retries_per_run=retries / n if n else None,
                transient_failures=retries + (int(e["transient_errors"] or 0) if e else 0),
                permanent_failures=int(e["permanent_errors"] or 0) if e else 0,
                cost_per_completed_run=cost.get(name, 0.0) / succeeded if succeeded else None,
                dead_letter_backlog=dead.get(name, 0),
                human_reviews=reviewed,
                without_human_edit=int(h["approved"] or 0) / reviewed if h and reviewed else None,
            )
        )
    return out


@dataclass
class _Sums:
    calls: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    transient: int = 0
    permanent: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    latency_sum: float = 0.0
    timed: int = 0


async def _models(
    store: Store,
    params: dict[str, Any],
    minutes: float,
    usage: list[dict[str, Any]],
    only: str | None,
) -> list[ModelStats]:
    sums: dict[str, _Sums] = {}
    for u in usage:
        if only is not None and u["model"] != only:
            continue
        s = sums.setdefault(u["model"], _Sums())
        calls, status = int(u["calls"]), u["status"]
        s.calls += calls
        s.by_status[status] = s.by_status.get(status, 0) + calls
        if status in ("error", "denied"):
            if status == "error" and str(u["error_type"]).strip() in TRANSIENT_ERRORS:
                s.transient += calls
            else:
                s.permanent += calls
        s.input_tokens += int(u["input_tokens"] or 0)
        s.output_tokens += int(u["output_tokens"] or 0)
        s.cost += float(u["cost"] or 0.0)
        if status == "ok":
            s.latency_sum += float(u["latency_sum"] or 0.0)
            s.timed += int(u["timed"])
    if store.dialect == "sqlite":
        latency = {
            name: await _at_ranks(
                store, "stats_model_latency_at", {**params, "model": name}, s.timed
            )
            for name, s in sums.items()
            if s.timed
        }
    else:
        rows = await store.fetch("stats_model_latency", params)
        latency = {r["model"]: list(r["latency"]) for r in rows}
    out = []
    for name in sorted(sums):
        s = sums[name]
        ok, cached = s.by_status.get("ok", 0), s.by_status.get("cached", 0)
        p50, p95, p99 = (_num(v) for v in latency.get(name, (None, None, None)))
        out.append(
            ModelStats(
                model=name,
                calls=s.calls,
                ok=ok,
                cached=cached,
                errors=s.by_status.get("error", 0),
                denied=s.by_status.get("denied", 0),
                throughput_per_min=s.calls / minutes,
                error_rate=(s.transient + s.permanent) / s.calls if s.calls else None,
                latency_ms=Percentiles(p50, p95, p99, s.latency_sum / s.timed if s.timed else None),
                transient_failures=s.transient,
                permanent_failures=s.permanent,
                input_tokens=s.input_tokens,
                output_tokens=s.output_tokens,
                cost=s.cost,
                cost_per_inference=s.cost / (ok + cached) if ok + cached else None,
            )
        )
    return out


def _percentiles(row: dict[str, Any], prefix: str) -> Percentiles:
    """From a row holding ``<prefix>``, the three percentiles in a list, and
    ``<prefix>_mean``."""
    p50, p95, p99 = (_num(v) for v in row.get(prefix) or (None, None, None))
    return Percentiles(p50, p95, p99, _num(row.get(f"{prefix}_mean")))


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


__all__ = [
    "QUANTILES",
    "TRANSIENT_ERRORS",
    "ModelStats",
    "Percentiles",
    "Stats",
    "WorkflowStats",
    "read_stats",
    "window_start",
]
