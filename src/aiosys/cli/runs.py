"""``aiosys runs list|show|cancel|resume|signal``: inspect and steer runs in the store.

These commands need no workflow code beyond locating the store: with no ``--app`` and no
``app =`` in aiosys.toml they use the store URL alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from ..store.base import STATUSES, TERMINAL, EffectRow, RunRow
from .common import (
    AppOption,
    JsonFlag,
    StoreOption,
    bare_store,
    console,
    echo_json,
    fail,
    parse_json,
    run_and_effects,
    run_async,
    store_app,
    with_opened,
    with_store,
)
from .group import CommandGroup
from .render import effect_dict, model_usage, run_detail, run_dict, run_view, runs_table

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
        "--tenant", help="Look only in this tenant (a run of another is not found); default: any."
    ),
]


@runs.command("list")
def list_runs(
    status: Annotated[
        str | None, typer.Option("--status", help=f"One of: {', '.join(STATUSES)}.")
    ] = None,
    workflow: Annotated[str | None, typer.Option("--workflow", help="Workflow name.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many runs.")] = 50,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """List runs, newest first."""
    if status is not None and status not in STATUSES:
        fail(f"unknown status {status!r}; use one of: {', '.join(STATUSES)}", 2)

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


@runs.command("show")
def show(
    run_id: RunId,
    tenant: TenantOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Show a run and its effect timeline."""

    async def app_body(a: App) -> tuple[RunRow, list[EffectRow]]:
        row = await a.get_run(run_id, tenant=tenant)
        return row, await a.effects(run_id, tenant=tenant)

    async def read() -> tuple[RunRow, list[EffectRow]]:
        bare = bare_store(app, store)  # the local user, no app: the store alone, fast
        if bare is not None:
            return await with_store(bare, lambda s: run_and_effects(s, run_id, tenant))
        return await with_opened(store_app(app, store), app_body)

    row, effects = run_async(read)
    if json_:
        detail = {**run_detail(row), "model_usage": model_usage(effects)}
        echo_json({**detail, "effects": [effect_dict(e) for e in effects]})
    else:
        console().print(run_view(row, effects))


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
