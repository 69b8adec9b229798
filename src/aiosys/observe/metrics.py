"""Prometheus metrics computed from the store at scrape time (prometheus-client).

Every number here is read from the store when it is scraped (``collect``), not counted in a
worker's memory: runs, effects, ``model_usage``, the daily spend buckets and the workers
registry are the system of record every worker writes to, so a scrape from any process (the
``aiosys metrics`` command, a server's ``/metrics``) counts the work of every worker, and a
worker that dies loses no count. Counters are totals over the rows the store keeps: a prune
lowers them (Prometheus treats that as a counter reset). Histograms are counted per bucket in
SQL (``sql/metrics.sql``, one column per bound). Nothing runs on a worker's hot path:
switched off (never scraped) it costs nothing. A scrape reads every row the store keeps
(see "Scrape cost" in the README): retention bounds it.

The only in-process figures are the circuit breakers' states, which live in each process's
memory (``models/links/breaker.py``): the caller passes what its own process knows.

Series (labels in braces; seconds, currency units of the model cards):

========================================  =========  ===========================================
``aiosys_runs_created_total``             counter    {workflow, tenant}
``aiosys_runs_started_total``             counter    {workflow, tenant}: claimed at least once
``aiosys_runs_ended_total``               counter    {workflow, tenant, status}: terminal ones
``aiosys_runs``                           gauge      {workflow, tenant, status}: pending, running,
                                                     waiting now
``aiosys_dead_letter_runs``               gauge      {workflow, tenant, status}: dead-lettered
                                                     runs (status ``dead``) awaiting
                                                     ``aiosys runs resume``, as ``stats``'s
                                                     ``dead_letter_backlog``
``aiosys_run_duration_seconds``           histogram  {workflow}: first claim to end
``aiosys_queue_depth``                    gauge      {queue}: runs a claim could take now
``aiosys_queue_oldest_ready_seconds``     gauge      {queue}: how long the oldest of them waits
``aiosys_queue_in_flight``                gauge      {queue}: runs under a live lease
``aiosys_queue_wait_seconds``             histogram  {queue}: creation to first claim
``aiosys_effects_total``                  counter    {kind, name, outcome, error_class}:
                                                     ok / error; transient, permanent or ""
``aiosys_effect_retries_total``           counter    {kind, name}: failed attempts retried
``aiosys_effect_duration_seconds``        histogram  {kind}
``aiosys_workers``                        gauge      live workers (local principal only)
``aiosys_model_calls_total``              counter    {model, tenant, status}
``aiosys_model_tokens_total``             counter    {model, tenant, type}
``aiosys_model_cost_total``               counter    {model, tenant}
``aiosys_model_cache_hit_ratio``          gauge      {model}: cached / (cached + sent)
``aiosys_model_call_duration_seconds``    histogram  {model}: calls sent to a provider
``aiosys_budget_used``                    gauge      {scope, key, period, tenant, hard}
``aiosys_budget_limit``                   gauge      {scope, key, period, tenant, hard}
``aiosys_breaker_state``                  gauge      {deployment, state}: 1 for its state
========================================  =========  ===========================================

Tenancy: ``collect(tenant=T)`` reads only tenant ``T``'s rows (every series with a tenant
label carries ``T`` only, and the histograms count only its runs, effects and calls);
``tenant=None`` (the local operator) reads every tenant and adds the workers gauge.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..store.base import STATUSES, TERMINAL, Store

#: Upper bounds (seconds) of the histograms' buckets, +Inf after them. Workflows wait for
#: minutes to days, so the bounds reach a day. ``sql/metrics.sql`` writes one column each.
BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    1800.0,
    3600.0,
    21600.0,
    86400.0,
)

LIVE = tuple(s for s in STATUSES if s not in TERMINAL)  # pending, running, waiting
# Dead-lettered runs (DESIGN: ``dead``, kept for inspection and ``runs resume``), as
# ``stats``'s ``dead_letter_backlog`` counts them; ``failed`` runs are ended, not parked.
DEAD_LETTER = ("dead",)
BREAKER_STATES = ("closed", "open", "half_open")
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
PERIODS = ("day", "month", "total")


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    """A budget to report (the model plane's ``Budget`` as plain data): ``scope`` is
    ``tenant`` or ``workflow``, ``key`` a tenant id, ``tenant/workflow`` or a bare workflow
    (its cap applies in every tenant), ``limit`` in currency units per ``period`` (``day``,
    ``month`` or ``total``, calendar periods in UTC)."""

    scope: str
    key: str
    limit: float
    period: str
    hard: bool = True


def period_start(period: str, now: float) -> float:
    """The UTC midnight that opens the ``period`` holding ``now`` (0 for ``total``)."""
    if period == "total":
        return 0.0
    at = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        at = at.replace(day=1)
    return at.timestamp()


class Snapshot(Collector):
    """A prometheus-client ``Collector`` of metric families computed beforehand (``collect``
    reads the store, which is async; a registry's collect is sync)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def exposition(families: Sequence[Metric]) -> str:
    """The families in Prometheus's text exposition format (version 0.0.4), as prometheus-
    client writes it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Snapshot(families))
    return generate_latest(registry).decode()


async def collect(
    store: Store,
    *,
    tenant: str | None,
    budgets: Iterable[BudgetSpec] = (),
    breakers: Mapping[str, str] | None = None,
) -> list[Metric]:
    """Every metric family above, read from ``store`` now (its clock), in one scrape.

    ``tenant``: the only tenant whose rows are read (None: all, and the workers gauge);
    ``budgets``: the budgets to report with their use; ``breakers``: this process's breaker
    state per deployment (``closed``, ``open``, ``half_open``). Several reads, each a
    statement of its own (no snapshot across them). Raises what the store raises."""
    params: dict[str, Any] = {"tenant": tenant}
    now = store.clock()
    families: list[Metric] = []
    families += _runs(await store.fetch("metrics_runs", params))
    families.append(
        _histogram(
            "aiosys_run_duration_seconds",
            "Seconds from a run's first claim to its end, per workflow.",
            "workflow",
            await store.fetch("metrics_run_seconds", params),
        )
    )
    families += _queues(await store.fetch("metrics_queues", {**params, "now": now}), now)
    families.append(
        _histogram(
            "aiosys_queue_wait_seconds",
            "Seconds from a run's creation to its first claim, per queue.",
            "queue",
            await store.fetch("metrics_queue_wait_seconds", params),
        )
    )
    families += _effects(await store.fetch("metrics_effects", params))  # one pass: 3 families
    if tenant is None:
        workers = GaugeMetricFamily("aiosys_workers", "Live workers (registered, beating).")
        workers.add_metric([], len(await store.live_workers()))
        families.append(workers)
    families += _models(await store.fetch("metrics_models", params))
    families.append(
        _histogram(
            "aiosys_model_call_duration_seconds",
            "Seconds a model call sent to a provider took (cache hits excluded), per model.",
            "model",
            await store.fetch("metrics_model_seconds", params),
        )
    )
    families += await _budgets(store, list(budgets), tenant, now)
    families.append(_breakers(breakers or {}))
    return families


def _runs(rows: list[dict[str, Any]]) -> list[Metric]:
    created = CounterMetricFamily(
        "aiosys_runs_created", "Runs recorded.", labels=["workflow", "tenant"]
    )
    started = CounterMetricFamily(
        "aiosys_runs_started",
        "Runs claimed by a worker at least once.",
        labels=["workflow", "tenant"],
    )
    ended = CounterMetricFamily(
        "aiosys_runs_ended", "Runs that ended, by status.", labels=["workflow", "tenant", "status"]
    )
    live = GaugeMetricFamily(
        "aiosys_runs",
        "Runs not ended, by status (running: in flight).",
        labels=["workflow", "tenant", "status"],
    )
    dead = GaugeMetricFamily(
        "aiosys_dead_letter_runs",
        "Runs dead-lettered (status dead), kept for inspection and resume.",
        labels=["workflow", "tenant", "status"],
    )
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        key = (str(r["workflow"]), str(r["tenant"]))
        n, status = int(r["n"]), str(r["status"])
        totals[key][0] += n
        totals[key][1] += int(r["started"] or 0)
        if status in TERMINAL:
            ended.add_metric([*key, status], n)
        else:
            live.add_metric([*key, status], n)
        if status in DEAD_LETTER:
            dead.add_metric([*key, status], n)
    for key, (n_created, n_started) in sorted(totals.items()):
        created.add_metric(list(key), n_created)
        started.add_metric(list(key), n_started)
    return [created, started, ended, live, dead]


def _queues(rows: list[dict[str, Any]], now: float) -> list[Metric]:
    depth = GaugeMetricFamily(
        "aiosys_queue_depth",
        "Runs a claim could take now (pending, timer due, lease expired).",
        labels=["queue"],
    )
    oldest = GaugeMetricFamily(
        "aiosys_queue_oldest_ready_seconds",
        "Seconds the longest-waiting claimable run of the queue has been claimable.",
        labels=["queue"],
    )
    flight = GaugeMetricFamily(
        "aiosys_queue_in_flight", "Runs a worker holds under a live lease.", labels=["queue"]
    )
    for r in rows:
        queue = [str(r["queue"])]
        depth.add_metric(queue, int(r["ready"] or 0))
        first = r["oldest"]
        oldest.add_metric(queue, 0.0 if first is None else max(0.0, now - float(first)))
        flight.add_metric(queue, int(r["in_flight"] or 0))
    return [depth, oldest, flight]


def _effects(rows: list[dict[str, Any]]) -> list[Metric]:
    effects = CounterMetricFamily(
        "aiosys_effects",
        "Effects with a recorded outcome (ok, error), errors by class (transient: retry "
        "would try again, or did until its attempts ran out; permanent).",
        labels=["kind", "name", "outcome", "error_class"],
    )
    retries = CounterMetricFamily(
        "aiosys_effect_retries",
        "Failed attempts of effects that were tried again.",
        labels=["kind", "name"],
    )
    counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
    retried: dict[tuple[str, str], int] = defaultdict(int)
    per_kind: list[dict[str, Any]] = []  # the duration histogram's rows, by kind
    for r in rows:
        kind, name = str(r["kind"]), str(r["name"])
        n, transient = int(r["n"]), int(r["transient"] or 0)
        if r["status"] == "error":
            counts[(kind, name, "error", "transient")] += transient
            counts[(kind, name, "error", "permanent")] += n - transient
        else:
            counts[(kind, name, "ok", "")] += n
        retried[(kind, name)] += int(r["retries"] or 0)
        per_kind.append({**r, "kind": kind})
    for key, n in sorted(counts.items()):
        effects.add_metric(list(key), n)
    for (kind, name), n in sorted(retried.items()):
        retries.add_metric([kind, name], n)
    durations = _histogram(
        "aiosys_effect_duration_seconds",
        "Seconds from an effect's start to its recorded outcome, per kind.",
        "kind",
        per_kind,
    )
    return [effects, retries, durations]


def _models(rows: list[dict[str, Any]]) -> list[Metric]:
    calls = CounterMetricFamily(
        "aiosys_model_calls",
        "Model calls, by status (ok, error, cached, denied, shadow).",
        labels=["model", "tenant", "status"],
    )
    tokens = CounterMetricFamily(
        "aiosys_model_tokens",
        "Tokens of model calls, by type (cache_read, cache_write: parts of input; reasoning: "
        "part of output).",
        labels=["model", "tenant", "type"],
    )
    cost = CounterMetricFamily(
        "aiosys_model_cost",
        "Cost of model calls, in the cards' currency units.",
        labels=["model", "tenant"],
    )
    ratio = GaugeMetricFamily(
        "aiosys_model_cache_hit_ratio",
        "Share of a model's calls answered from the cache: cached / (cached + ok + error).",
        labels=["model"],
    )
    per_tokens: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(TOKEN_TYPES, 0)
    )
    per_cost: dict[tuple[str, str], float] = defaultdict(float)
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # model -> [cached, answered]
    for r in rows:
        model, tenant, status = str(r["model"]), str(r["tenant"]), str(r["status"])
        n = int(r["n"])
        calls.add_metric([model, tenant, status], n)
        for t in TOKEN_TYPES:
            per_tokens[(model, tenant)][t] += int(r[f"{t}_tokens"] or 0)
        per_cost[(model, tenant)] += float(r["cost"] or 0.0)
        if status in ("ok", "error", "cached"):
            hits[model][1] += n
            if status == "cached":
                hits[model][0] += n
    for (model, tenant), by_type in sorted(per_tokens.items()):
        for t, n in by_type.items():
            tokens.add_metric([model, tenant, t], n)
        cost.add_metric([model, tenant], per_cost[(model, tenant)])
    for model, (cached, answered) in sorted(hits.items()):
        if answered:
            ratio.add_metric([model], cached / answered)
    return [calls, tokens, cost, ratio]


def _histogram(name: str, doc: str, label: str, rows: list[dict[str, Any]]) -> Metric:
    """A histogram family from rows of (label value, cumulative ``le_<i>`` per bound of
    ``BUCKETS``, ``n``, ``total``); rows of one label value are added up."""
    family = HistogramMetricFamily(name, doc, labels=[label])
    per: dict[str, list[float]] = {}
    for r in rows:
        sums = per.setdefault(str(r[label]), [0.0] * (len(BUCKETS) + 2))
        for i in range(len(BUCKETS)):
            sums[i] += int(r[f"le_{i}"] or 0)
        sums[-2] += int(r["n"])
        sums[-1] += float(r["total"] or 0.0)
    for value, sums in sorted(per.items()):
        bounds = [*map(_bound, BUCKETS), "+Inf"]
        family.add_metric([value], list(zip(bounds, sums[:-1], strict=True)), sums[-1])
    return family


def _bound(b: float) -> str:
    return repr(float(b))


async def _budgets(
    store: Store, budgets: list[BudgetSpec], tenant: str | None, now: float
) -> list[Metric]:
    labels = ["scope", "key", "period", "tenant", "hard"]
    used = GaugeMetricFamily(
        "aiosys_budget_used",
        "Spend in the budget's current period (UTC), in currency units, per tenant it covers.",
        labels=labels,
    )
    limit = GaugeMetricFamily(
        "aiosys_budget_limit", "The budget's limit per period, in currency units.", labels=labels
    )
    spend: dict[str, list[dict[str, Any]]] = {}
    for period in sorted({b.period for b in budgets}):
        since = period_start(period, now)
        spend[period] = await store.fetch("metrics_spend_since", {"since": since, "tenant": tenant})
    for b in budgets:
        rows = spend[b.period]
        per_tenant: dict[str, float] = defaultdict(float)
        if b.scope == "tenant":
            if tenant is not None and b.key != tenant:
                continue
            per_tenant[b.key] = sum(float(r["cost"]) for r in rows if r["tenant"] == b.key)
        elif "/" in b.key:
            owner, workflow = b.key.split("/", 1)
            if tenant is not None and owner != tenant:
                continue
            per_tenant[owner] = sum(
                float(r["cost"]) for r in rows if r["tenant"] == owner and r["workflow"] == workflow
            )
        else:  # a bare workflow: the same cap in every tenant, each counted apart
            if tenant is not None:
                per_tenant[tenant] = 0.0
            for r in rows:
                if r["workflow"] == b.key:
                    per_tenant[str(r["tenant"])] += float(r["cost"])
        for who, amount in sorted(per_tenant.items()):
            values = [b.scope, b.key, b.period, who, "true" if b.hard else "false"]
            used.add_metric(values, amount)
            limit.add_metric(values, b.limit)
    return [used, limit]


def _breakers(states: Mapping[str, str]) -> Metric:
    family = GaugeMetricFamily(
        "aiosys_breaker_state",
        "Circuit breaker of a deployment in this process: 1 for its state, 0 for the others.",
        labels=["deployment", "state"],
    )
    for deployment, state in sorted(states.items()):
        for s in BREAKER_STATES:
            family.add_metric([deployment, s], 1.0 if s == state else 0.0)
    return family


__all__ = ["BUCKETS", "BudgetSpec", "Snapshot", "collect", "exposition", "period_start"]
