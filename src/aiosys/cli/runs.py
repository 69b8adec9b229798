"""``aiosys runs list|show|cancel|resume|signal``: inspect and steer runs in the store.

These commands need no workflow code beyond locating the store: with no ``--app`` and no
``app =`` in aiosys.toml they use the store URL alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from ..store.base import STATUSES, TERMINAL, EffectRow, RecoveryRow, RunRow, WorkerRow
from .attempts import attempt_dicts, attempts
from .common import (
    AppOption,
    JsonFlag,
    StoreOption,
    a_name,
    bare_store,
    console,
    echo_json,
    fail,
    get_run,
    parse_json,
    run_and_effects,
    run_async,
    store_app,
    tenant_name,
    with_opened,
    with_store,
)
from .group import CommandGroup
from .render import effect_dict, model_usage, run_detail, run_dict, run_view, runs_table
from .times import iso

if TYPE_CHECKING:
    from ..kernel import App
    from ..store import Store

runs = typer.Typer(
    help="Inspect and steer runs: list, show, cancel, resume, signal, prune.", cls=CommandGroup
)

RunId = Annotated[str, typer.Argument(help="The run's id.")]
TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        callback=tenant_name,
        help="Look only in this tenant (a run of another is not found); default: any.",
    ),
]


@runs.command("list")
def list_runs(
    status: Annotated[
        str | None, typer.Option("--status", help=f"One of: {', '.join(STATUSES)}.")
    ] = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", callback=a_name, help="Workflow name.")
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", callback=tenant_name, help="Tenant.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1_000_000, help="At most this many runs.")
    ] = 50,
    stranded: Annotated[
        bool,
        typer.Option(
            "--stranded",
            help="Only the runs no live worker serves: claimable (pending, timer due, lease "
            "expired) but of a workflow@version or queue that no worker registered in the "
            "store within its last two leases serves; longest claimable first.",
        ),
    ] = False,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """List runs, newest first (``--stranded``: the runs no live worker serves)."""
    if status is not None and status not in STATUSES:
        fail(f"unknown status {status!r}; use one of: {', '.join(STATUSES)}", 2)
    if stranded:
        if status is not None:
            fail("--stranded lists claimable runs whatever their status: drop --status", 2)
        _list_stranded(workflow, tenant, limit, json_, app, store)
        return

    async def body(s: Store | App) -> list[RunRow]:
        return await s.list_runs(status=status, workflow=workflow, tenant=tenant, limit=limit)

    async def read() -> list[RunRow]:
        bare = bare_store(app, store)  # the local user, no app: the store alone, fast
        if bare is not None:
            return await with_store(bare, body)
        return await with_opened(store_app(app, store), body)

    rows = run_async(read)
    if json_:
        echo_json([run_dict(r) for r in rows])
    else:
        console().print(runs_table(rows))


def _list_stranded(
    workflow: str | None,
    tenant: str | None,
    limit: int,
    json_: bool,
    app: str | None,
    store: str | None,
) -> None:
    async def body(a: App) -> tuple[list[RunRow], list[WorkerRow]]:
        # Scoped as `runs list` is: a key's principal sees its own tenant's runs only.
        scope = await a.authorize("list_runs", tenant=tenant)
        rows = await a.store.stranded_runs(workflow=workflow, tenant=scope, limit=limit)
        return rows, await a.store.live_workers()

    rows, workers = run_async(lambda: with_opened(store_app(app, store), body))
    if json_:
        echo_json(
            {
                "live_workers": [_worker_dict(w) for w in workers],
                "stranded": [
                    {**run_dict(r), "queue": r.queue, "claimable_since": iso(r.available_at)}
                    for r in rows
                ],
            }
        )
        return
    out = console()
    table = runs_table(rows)
    table.title = f"{len(rows)} stranded run{'s' if len(rows) != 1 else ''}"
    out.print(table)
    if not workers:
        out.print(
            "no live worker is registered in this store: every claimable run is stranded "
            "(start one with `aiosys worker`)",
            markup=False,
        )
    for w in workers:
        out.print(
            f"live worker {w.id}: queues {', '.join(w.queues)}; serves "
            f"{', '.join(w.wf_keys) or 'nothing'}",
            markup=False,
        )


def _worker_dict(w: WorkerRow) -> dict[str, object]:
    return {
        "id": w.id,
        "host": w.host,
        "pid": w.pid,
        "queues": list(w.queues),
        "serves": list(w.wf_keys),
        "started_at": iso(w.started_at),
        "heartbeat_at": iso(w.heartbeat_at),
    }


@runs.command("show")
def show(
    run_id: RunId,
    tenant: TenantOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
    trace: Annotated[
        bool,
        typer.Option(
            "--trace",
            help="Draw the run's trace (its span and its effects' spans, from the store) as a "
            "waterfall; with --json, the spans.",
        ),
    ] = False,
) -> None:
    """Show a run, its attempts (which worker ran each, and the gaps where a worker's lease
    expired) and its effect timeline.

    With --trace, its trace instead: the run's span and its effects' spans as a waterfall."""
    if trace:
        _show_trace(run_id, tenant, json_, app, store)
        return

    async def app_body(a: App) -> tuple[RunRow, list[EffectRow], list[RecoveryRow]]:
        row = await a.get_run(run_id, tenant=tenant)
        effects = await a.effects(run_id, tenant=tenant)
        return row, effects, await a.store.list_recoveries(run_id, tenant=tenant)

    async def read() -> tuple[RunRow, list[EffectRow], list[RecoveryRow]]:
        bare = bare_store(app, store)  # the local user, no app: the store alone, fast
        if bare is not None:

            async def direct(s: Store) -> tuple[RunRow, list[EffectRow], list[RecoveryRow]]:
                row, effects = await run_and_effects(s, run_id, tenant)
                return row, effects, await s.list_recoveries(run_id, tenant=tenant)

            return await with_store(bare, direct)
        return await with_opened(store_app(app, store), app_body)

    row, effects, recoveries = run_async(read)
    found = attempts(recoveries, effects)
    if json_:
        detail = {**run_detail(row), "model_usage": model_usage(effects)}
        echo_json(
            {
                **detail,
                "attempts": attempt_dicts(found),
                "effects": [effect_dict(e) for e in effects],
            }
        )
    else:
        console().print(run_view(row, effects, found))


def _show_trace(
    run_id: str, tenant: str | None, json_: bool, app: str | None, store: str | None
) -> None:
    from ..observe.spans import stored_trace
    from .trace_view import waterfall

    async def read() -> list[dict[str, object]]:
        bare = bare_store(app, store)  # the local user, no app: the store alone, fast
        if bare is not None:

            async def direct(s: Store) -> list[dict[str, object]]:
                return await stored_trace(s, await get_run(s, run_id, tenant))

            return await with_store(bare, direct)

        async def app_body(a: App) -> list[dict[str, object]]:
            from ..app import App as FullApp

            if isinstance(a, FullApp):
                return list(await a.trace(run_id, tenant=tenant))
            return await stored_trace(a.store, await a.get_run(run_id, tenant=tenant))

        return await with_opened(store_app(app, store), app_body)

    spans = run_async(read)
    if json_:
        echo_json(spans)
    else:
        console().print(waterfall(spans))


def _report(row: RunRow, json_: bool, action: str) -> None:
    if json_:
        echo_json(run_dict(row))
    else:
        console().print(Text.assemble(f"run {row.id}: ", (row.status, "bold"), action))


@runs.command("cancel")
def cancel(
    run_id: RunId,
    reason: Annotated[str, typer.Option("--reason", help="Recorded as the run's error.")] = (
        "cancelled by request"
    ),
    tenant: TenantOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Cancel a run and its children that were not started detached.

    A run that holds no worker ends cancelled at once; a running one stops at its next
    effect."""
    row = run_async(
        lambda: with_opened(
            store_app(app, store), lambda a: a.cancel(run_id, reason, tenant=tenant)
        )
    )
    _report(row, json_, "" if row.status in TERMINAL else " (cancel requested)")


@runs.command("resume")
def resume(
    run_id: RunId,
    tenant: TenantOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Put a dead or failed run back in the queue, from the effect that failed."""
    row = run_async(
        lambda: with_opened(store_app(app, store), lambda a: a.resume(run_id, tenant=tenant))
    )
    _report(row, json_, " (a worker will take it)")


@runs.command("signal")
def signal(
    run_id: RunId,
    name: Annotated[str, typer.Argument(help="The signal's name, as in ctx.wait_for(name).")],
    payload: Annotated[
        str | None, typer.Option("--payload", help="The signal's payload as JSON.")
    ] = None,
    tenant: TenantOption = None,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Send a signal to a run; a run waiting for it wakes, a run not yet waiting keeps it."""
    value = parse_json(payload, "--payload")
    run_async(
        lambda: with_opened(
            store_app(app, store), lambda a: a.signal(run_id, name, value, tenant=tenant)
        )
    )
    console().print(f"signal {name!r} sent to run {run_id}", markup=False)
