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
  attempts beyond the first, per run (effects of the runs that ended in the window);
- ``cost_per_completed_run``: model cost metered for the runs that succeeded, per such run
  (None when none succeeded);
- ``dead_letter_backlog``: runs ``dead`` now, whenever they died (not windowed);
- ``without_human_edit``: the share of runs finished without a human edit. Human tasks are
  not built yet, so it is always None (shown ``n/a``).

Per model (``ModelStats``), from the ``model_usage`` rows (one per call to a deployment,
cache hits and budget denials included) metered in the window: ``calls`` and how they went,
``latency_ms`` percentiles of the calls that reached a provider (status ``ok``: cache hits
and failures are not timed), ``throughput_per_min`` (calls per minute of the window),
``error_rate`` (errors and denials per call), failures split into transient and permanent by
the error's class name (``TRANSIENT_ERRORS``; a denial is permanent), tokens, ``cost`` and
``cost_per_inference`` (cost per call that returned an answer: ok or cached).

Percentiles are nearest-rank: the value at 1-based rank ``ceil(q * n)`` of the ``n`` values
in order (numpy's ``method="inverted_cdf"``, PostgreSQL's ``percentile_disc``); SQLite, which
has no percentile function, picks it with ``row_number()`` (``sql/sqlite/stats.sql``). A
percentile is always one of the observed values, so both stores give numpy's exact answer.
"""

from __future__ import annotations

import builtins
import inspect
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from .. import errors as aiosys_errors
from ..durations import parse_before
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
    effects: int = 0
    retries_per_run: float | None = None
    transient_failures: int = 0
    permanent_failures: int = 0
    cost_per_completed_run: float | None = None
    dead_letter_backlog: int = 0
    without_human_edit: float | None = None  # human tasks are not built yet: always None


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
        return next((w for w in self.workflows if w.workflow == name), None)

    def of_model(self, name: str) -> ModelStats | None:
        return next((m for m in self.models if m.model == name), None)


def window_start(since: str | float | timedelta, now: float) -> float:
    """The epoch seconds a window starts at: ``since`` as a duration back from ``now``
    (``"24h"``, ``"7d"``, or a ``timedelta``), an ISO 8601 date/time (``"2026-11-01"``, UTC
    without an offset) or epoch seconds (a number). ``InvalidInput`` naming the forms
    otherwise, or for a start that is not before ``now``."""
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
        raise InvalidInput(f"since ({since!r}) must be before now: the window would be empty")
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
        "model": model,
    }
    minutes = (until - since) / 60.0
    workflows = await _workflows(store, params, minutes)
    models = await _models(store, params, minutes)
    return Stats(since, until, tenant, workflow, model, workflows, models)


async def _workflows(store: Store, params: dict[str, Any], minutes: float) -> list[WorkflowStats]:
    runs = {r["workflow"]: r for r in await store.fetch("stats_runs", params)}
    effects = {r["workflow"]: r for r in await store.fetch("stats_run_effects", params)}
    costs = {r["workflow"]: r for r in await store.fetch("stats_run_costs", params)}
    dead = {r["workflow"]: int(r["dead"]) for r in await store.fetch("stats_dead_backlog", params)}
    out = []
    for name in sorted(set(runs) | set(dead)):
        r, e, c = runs.get(name), effects.get(name), costs.get(name)
        n = int(r["runs"]) if r else 0
        succeeded = int(r["succeeded"]) if r else 0
        failed = int(r["failed"]) if r else 0
        retries = int(e["retries"] or 0) if e else 0
        out.append(
            WorkflowStats(
                workflow=name,
                runs=n,
                succeeded=succeeded,
                failed=failed,
                cancelled=int(r["cancelled"]) if r else 0,
                throughput_per_min=n / minutes,
                error_rate=failed / n if n else None,
                latency=_percentiles(r, "latency") if r else Percentiles(),
                time_to_resolution=_percentiles(r, "resolution") if r else Percentiles(),
                effects=int(e["effects"]) if e else 0,
                retries_per_run=retries / n if n else None,
                transient_failures=retries + (int(e["transient_errors"] or 0) if e else 0),
                permanent_failures=int(e["permanent_errors"] or 0) if e else 0,
                cost_per_completed_run=(
                    (float(c["cost"] or 0.0) if c else 0.0) / succeeded if succeeded else None
                ),
                dead_letter_backlog=dead.get(name, 0),
            )
        )
    return out


async def _models(store: Store, params: dict[str, Any], minutes: float) -> list[ModelStats]:
    transient: dict[str, int] = {}
    permanent: dict[str, int] = {}
    for row in await store.fetch("stats_model_errors", params):
        name, calls = row["model"], int(row["calls"])
        is_transient = row["status"] == "error" and row["error_type"].strip() in TRANSIENT_ERRORS
        bucket = transient if is_transient else permanent
        bucket[name] = bucket.get(name, 0) + calls
    out = []
    for r in await store.fetch("stats_models", params):
        name, calls = r["model"], int(r["calls"])
        answered = int(r["ok"]) + int(r["cached"])
        failed = int(r["errors"]) + int(r["denied"])
        cost = float(r["cost"] or 0.0)
        out.append(
            ModelStats(
                model=name,
                calls=calls,
                ok=int(r["ok"]),
                cached=int(r["cached"]),
                errors=int(r["errors"]),
                denied=int(r["denied"]),
                throughput_per_min=calls / minutes,
                error_rate=failed / calls if calls else None,
                latency_ms=_percentiles(r, "latency"),
                transient_failures=transient.get(name, 0),
                permanent_failures=permanent.get(name, 0),
                input_tokens=int(r["input_tokens"] or 0),
                output_tokens=int(r["output_tokens"] or 0),
                cost=cost,
                cost_per_inference=cost / answered if answered else None,
            )
        )
    return out


def _percentiles(row: dict[str, Any], prefix: str) -> Percentiles:
    """From a row holding ``<prefix>`` (PostgreSQL: an array of the three) or
    ``<prefix>_p50`` ... (SQLite), and ``<prefix>_mean``."""
    packed = row.get(prefix)
    if isinstance(packed, list | tuple):
        values = [None if v is None else float(v) for v in packed]
    else:
        values = [_num(row.get(f"{prefix}_p{round(q * 100)}")) for q in QUANTILES]
    p50, p95, p99 = values
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
