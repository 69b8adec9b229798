"""Stats and SLOs: the window's table per workflow and per model (``App.stats``), charts
over time (p50/p95/p99 latency and cost per completed run of one workflow, failures by class,
from ``App.stats`` of each slice of the window), the dead-letter backlog, and the SLOs
checked now (``App.check_slos``). All of it in the visitor's tenant (the local principal:
every tenant)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ConfigError
from ..observe.stats import Stats, window_start
from ._charts import bar_chart, hbar_chart, line_chart
from ._console import Console, one_of

WINDOWS = ("1h", "24h", "7d", "30d")
SLICES = 12  # points of a chart over the window


def slice_label(t: float, window: float) -> str:
    """When a slice starts, as short as its window allows (``14:05``, ``05-31 14h``)."""
    at = datetime.fromtimestamp(t, UTC)
    return at.strftime("%H:%M") if window <= 86_400 else at.strftime("%m-%d %Hh")


async def series(console: Console, stats: Stats, workflow: str | None) -> dict[str, Any]:
    """The charts' data over ``stats``' window cut in ``SLICES``: ``labels``; for
    ``workflow`` its latency percentiles (``p50``/``p95``/``p99``, seconds) and cost per
    completed run; ``transient`` and ``permanent`` failures of every workflow."""
    app = console.app
    step = (stats.until - stats.since) / SLICES
    out: dict[str, list[Any]] = {
        k: [] for k in ("labels", "p50", "p95", "p99", "cost", "transient", "permanent")
    }
    for i in range(SLICES):
        start = stats.since + i * step
        part = await app.stats(since=start, until=start + step)
        out["labels"].append(slice_label(start, stats.until - stats.since))
        mine = part.of_workflow(workflow) if workflow else None
        latency = mine.latency if mine is not None else None
        out["p50"].append(latency.p50 if latency else None)
        out["p95"].append(latency.p95 if latency else None)
        out["p99"].append(latency.p99 if latency else None)
        out["cost"].append(mine.cost_per_completed_run if mine is not None else None)
        out["transient"].append(float(sum(w.transient_failures for w in part.workflows)))
        out["permanent"].append(float(sum(w.permanent_failures for w in part.workflows)))
    return out


async def slos(console: Console) -> dict[str, Any]:
    """The SLOs checked now (``slos``), or why they could not be (``slo_error``: a
    malformed ``[[slo]]`` table of aiosys.toml, an SLO naming an unknown workflow)."""
    try:
        return {"slos": await console.app.check_slos(), "slo_error": None}
    except ConfigError as exc:
        return {"slos": [], "slo_error": str(exc)}


def router(console: Console) -> APIRouter:
    r = APIRouter(route_class=console.route_class())
    app = console.app

    @r.get("/stats", name="stats")
    async def stats_page(request: Request) -> Response:
        since = one_of(request.query_params.get("since", "24h"), WINDOWS, "the window")
        now = app.store.clock()
        stats = await app.stats(since=window_start(since, now), until=now)
        names = [w.workflow for w in stats.workflows]
        chosen = request.query_params.get("workflow") or None
        if chosen is None and stats.workflows:
            chosen = max(stats.workflows, key=lambda w: w.runs).workflow
        data = await series(console, stats, chosen)
        labels = data["labels"]
        charts = {
            "latency": line_chart(
                f"run latency of {chosen or 'no workflow'}",
                labels,
                {"p50": data["p50"], "p95": data["p95"], "p99": data["p99"]},
                "s",
            ),
            "cost": bar_chart(
                f"cost per completed run of {chosen or 'no workflow'}",
                labels,
                {"cost per run": data["cost"]},
            ),
            "failures": bar_chart(
                "failures by class",
                labels,
                {"transient": data["transient"], "permanent": data["permanent"]},
            ),
            "dead": hbar_chart(
                "dead-letter backlog",
                [(w.workflow, float(w.dead_letter_backlog)) for w in stats.workflows],
                "runs",
            ),
        }
        return console.page(
            request,
            "stats.html",
            title="Stats",
            stats=stats,
            since=since,
            windows=WINDOWS,
            workflow=chosen,
            workflows=names,
            charts=charts,
            **await slos(console),
        )

    return r


__all__ = ["router", "series"]
