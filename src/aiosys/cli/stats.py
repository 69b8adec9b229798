"""``aiosys stats`` and ``aiosys slo check``: latency percentiles, throughput, errors, costs
and KPIs per workflow and per model over a window, and the SLOs declared on them.

Both read through the app (``app.stats``, ``app.check_slos``), so they are scoped to the
caller's tenant (``--api-key``: its own; the local operator: every tenant, or ``--tenant``).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from .common import (
    EXIT_ERROR,
    EXIT_USAGE,
    AppOption,
    JsonFlag,
    StoreOption,
    a_name,
    bare_store,
    console,
    echo_json,
    err,
    fail,
    run_async,
    store_app,
    tenant_name,
    with_opened,
    with_store,
)
from .group import CommandGroup

if TYPE_CHECKING:
    from ..app import App as PublicApp
    from ..kernel import App
    from ..observe.slo import SloResult
    from ..observe.stats import Percentiles, Stats, WorkflowStats
    from ..store import Store

TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        callback=tenant_name,
        help="Whose runs and calls (default: the API key's, else every tenant).",
    ),
]

slo = typer.Typer(help="Service level objectives: check them against the stats.", cls=CommandGroup)


def _public(app: App) -> PublicApp:
    from ..app import App as PublicApp

    if not isinstance(app, PublicApp):
        fail(f"the app is a {type(app).__name__}, not an aiosys.App: it has no stats")
    return app


def _spinning(text: str) -> Any:
    """A spinner on stderr while the store answers, on a terminal only."""
    return err.status(text) if err.is_terminal else nullcontext()


def stats(
    since: Annotated[
        str,
        typer.Option(
            "--since",
            help="The window: a duration back from now (30m, 24h, 7d) or a UTC date or "
            "time (2026-11-01, 2026-11-01T08:00).",
        ),
    ] = "24h",
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow", callback=a_name, help="Only this workflow (and its model calls)."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", callback=a_name, help="Only this model.")
    ] = None,
    tenant: TenantOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Latency percentiles, throughput, errors, costs and KPIs per workflow and model.

    Per workflow, over the runs that ended in the window: count, p50/p95/p99 latency,
    throughput, error rate, transient vs permanent failures, cost per completed run,
    dead-letter backlog, time to resolution and retries per run. Per model, over the calls
    made in it: the same for calls, and cost per call. Percentiles are nearest-rank (numpy's
    inverted_cdf)."""
    from ..durations import parse_before

    try:
        parse_before(since, 0.0)  # the form only: the window is taken on the store's clock
    except ValueError as exc:
        fail(f"--since: {exc}", EXIT_USAGE)

    from ..errors import InvalidInput

    async def body(a: App) -> Stats:
        try:  # the options' values (a window ending before it starts: 0s, a future date)
            return await _public(a).stats(
                since=since, workflow=workflow, model=model, tenant=tenant
            )
        except InvalidInput as exc:
            fail(str(exc), EXIT_USAGE)

    async def direct(s: Store) -> Stats:
        from ..observe.stats import read_stats, window_start

        end = s.clock()
        try:
            start = window_start(since, end)
        except InvalidInput as exc:
            fail(str(exc), EXIT_USAGE)
        return await read_stats(
            s, since=start, until=end, tenant=tenant, workflow=workflow, model=model
        )

    async def read() -> Stats:
        with _spinning("computing stats"):
            # The local user with no app: the store alone (no kernel, models or pydantic to
            # import), as `runs list` does; it may read every tenant, so nothing to check.
            bare = bare_store(app, store)
            if bare is not None:
                return await with_store(bare, direct)
            return await with_opened(store_app(app, store), body)

    result = run_async(read)
    if json_:
        echo_json(result.to_dict())
        return
    out = console()
    whose = "every tenant" if result.tenant is None else f"tenant {result.tenant}"
    out.print(f"stats of {whose}, since {_when(result.since)} ({since})", markup=False)
    out.print(_workflow_table(result))
    out.print(_model_table(result))


def _when(at: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: float | None, fmt: str = "{:.3g}") -> str:
    return "-" if value is None else fmt.format(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _no_edit(w: WorkflowStats) -> str:
    if w.without_human_edit is None:
        return "-"
    return f"{_pct(w.without_human_edit)} of {w.human_reviews}"


def _ps(p: Percentiles) -> list[str]:
    return [_num(p.p50), _num(p.p95), _num(p.p99)]


WORKFLOW_COLS = (
    *("runs", "err", "p50", "p95", "p99", "/min", "ttr50", "ttr95"),
    *("retry", "t/p", "$/run", "dead", "no-edit"),
)
MODEL_COLS = (
    *("calls", "cached", "err", "p50", "p95", "p99", "/min"),
    *("t/p", "tok in", "tok out", "cost", "$/call"),
)


def _table(title: str, first: str, cols: tuple[str, ...], caption: str) -> Table:
    t = Table(title=title, caption=caption, box=box.SIMPLE, caption_justify="left")
    t.add_column(first, no_wrap=True)
    for col in cols:
        t.add_column(col, justify="right", no_wrap=True)
    return t


def _workflow_table(s: Stats) -> Table:
    t = _table(
        "workflows: runs that ended in the window",
        "workflow",
        WORKFLOW_COLS,
        "p50/p95/p99: latency, first start to end (s); ttr: time to resolution, created to "
        "end (s); retry: retries per run; t/p: transient/permanent failures; dead: "
        "dead-letter backlog now; no-edit: share of the human reviews decided in the window "
        "that approved without an edit, of how many (-: none)"
        + ("" if s.workflows else "\nno run ended in the window"),
    )
    for w in s.workflows:
        t.add_row(
            w.workflow,
            str(w.runs),
            _pct(w.error_rate),
            *_ps(w.latency),
            f"{w.throughput_per_min:.3g}",
            _num(w.time_to_resolution.p50),
            _num(w.time_to_resolution.p95),
            _num(w.retries_per_run, "{:.2f}"),
            f"{w.transient_failures}/{w.permanent_failures}",
            _num(w.cost_per_completed_run, "{:.4g}"),
            str(w.dead_letter_backlog),
            _no_edit(w),
        )
    return t


def _model_table(s: Stats) -> Table:
    t = _table(
        "models: calls in the window",
        "model",
        MODEL_COLS,
        "p50/p95/p99: latency of the calls that reached a provider (ms); err: errors and "
        "denials per call; t/p: transient/permanent failures; $/call: cost per answered call"
        + ("" if s.models else "\nno model call in the window"),
    )
    for m in s.models:
        t.add_row(
            m.model,
            str(m.calls),
            str(m.cached),
            _pct(m.error_rate),
            *_ps(m.latency_ms),
            f"{m.throughput_per_min:.3g}",
            f"{m.transient_failures}/{m.permanent_failures}",
            str(m.input_tokens),
            str(m.output_tokens),
            f"{m.cost:.4g}",
            _num(m.cost_per_inference, "{:.4g}"),
        )
    return t


@slo.command("check")
def slo_check(
    tenant: TenantOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Check every SLO against the stats of its window; exit 1 when one is broken.

    The SLOs are the [[slo]] tables of ./aiosys.toml and the app's app.slo(...). Each is
    printed with its measured value, target and burn (measured / target; for error_rate,
    the error budget's burn rate). Exit 0 when all hold or have no data in their window, 0
    with a note when none is declared, 2 for a malformed [[slo]] table or one naming
    a workflow or model the app does not know."""
    from ..errors import ConfigError, InvalidInput

    async def body(a: App) -> list[SloResult]:
        with _spinning("checking SLOs"):
            try:
                return await _public(a).check_slos(tenant=tenant)
            except (ConfigError, InvalidInput) as exc:  # the SLOs' or the options' fault
                fail(str(exc), EXIT_USAGE)

    from ..observe.slo import slos_from_toml

    try:
        slos_from_toml()  # a malformed table is a usage error (exit 2), not a broken SLO
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    results = run_async(lambda: with_opened(store_app(app, store), body))
    broken = [r for r in results if r.broken]
    if json_:
        echo_json([r.to_dict() for r in results])
    elif not results:
        console().print(
            "no SLOs declared: add [[slo]] tables to aiosys.toml or app.slo(...) to the app",
            markup=False,
        )
    else:
        console().print(_slo_table(results))
        verdict = f"{len(broken)} of {len(results)} SLOs broken" if broken else "all SLOs hold"
        console().print(verdict, style="bold red" if broken else "green", markup=False)
    if broken:
        raise typer.Exit(EXIT_ERROR)


def _slo_table(results: list[SloResult]) -> Table:
    t = Table(box=box.SIMPLE)
    for col in ("subject", "objective", "window", "measured", "target", "burn", "status"):
        t.add_column(col, justify="right" if col in ("measured", "target", "burn") else "left")
    style = {"ok": "green", "broken": "bold red", "no data": "dim"}
    for r in results:
        s = r.slo
        unit = " s" if s.objective == "p95_latency" else ""
        t.add_row(
            s.subject,
            s.objective,
            f"{s.window:g}s",
            "-" if r.measured is None else f"{r.measured:.4g}{unit}",
            f"{s.target:.4g}{unit}",
            "-" if r.burn is None else f"{r.burn:.2f}",
            f"[{style[r.status]}]{r.status}[/]",
        )
    return t
