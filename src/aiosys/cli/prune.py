"""``aiosys runs prune``: delete runs that ended long ago, with their rows (``Store.prune``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from ..store.base import PRUNE_BATCH, PruneReport
from .common import (
    EXIT_USAGE,
    AppOption,
    JsonFlag,
    StoreOption,
    console,
    echo_json,
    err,
    fail,
    progress_bar,
    run_async,
    store_app,
    tenant_name,
    with_opened,
)
from .runs import runs

if TYPE_CHECKING:
    from ..kernel import App

NAMES = {  # one of each, as the counts are printed
    "effects": "effect",
    "signals": "signal",
    "usage": "model usage row",
    "shadows": "shadow outcome",
    "cache": "cached answer",
    "tasks": "human task",
    "pseudonyms": "pseudonym",
    "reservations": "expired budget reservation",
}


def _count(n: int, one: str) -> str:
    return f"{n} {one}" if n == 1 else f"{n} {one}s"


@runs.command("prune")
def prune(
    before: Annotated[
        str,
        typer.Option(
            "--before",
            help="Prune runs that ended before this: a duration ago (30d, 12h, 90m, 45s, 2w) "
            "or an ISO 8601 date/time (UTC unless it has an offset).",
        ),
    ],
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant", callback=tenant_name, help="Only this tenant's runs; default: every tenant."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Delete the runs that ended before --before, with their effects and usage rows.

    A run that ended (succeeded, failed, cancelled, dead) before --before is deleted with
    its effects, signals, model usage rows, cached answers, human tasks and pseudonyms;
    never a run still pending, running or waiting. Budgets keep counting the spend of
    deleted usage rows."""
    from ..durations import parse_before

    try:
        parse_before(before, time.time())  # a malformed value is a usage error, found at once
    except ValueError as exc:
        fail(f"--before: {exc}", EXIT_USAGE)

    async def body(a: App) -> PruneReport:
        scope = await a.authorize("prune_runs", tenant=tenant)  # an API key: its tenant only
        s = a.store
        cutoff = parse_before(before, s.clock())  # "30d": by the store's clock
        if not err.is_terminal:
            return await s.prune(cutoff, tenant=scope, dry_run=dry_run)
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

        rows = await s.fetch("prune_roots", {"before": cutoff, "tenant": scope})
        total = int(rows[0]["n"])
        verb = "counting" if dry_run else "pruning"
        with progress_bar(
            TextColumn(f"{verb} runs"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            show=total > PRUNE_BATCH,  # one batch: over before a bar would show
        ) as bar:
            task = bar.add_task(verb, total=total)

            def advance(report: PruneReport) -> None:
                bar.update(task, completed=min(report.roots, total))

            return await s.prune(cutoff, tenant=scope, dry_run=dry_run, progress=advance)

    report = run_async(lambda: with_opened(store_app(app, store), body))
    cutoff = datetime.fromtimestamp(report.before, UTC).isoformat().replace("+00:00", "Z")
    # The tenant pruned: an API key's own when --tenant was left out (None: every tenant).
    whose = report.tenant
    if json_:
        echo_json({"dry_run": dry_run, "before": cutoff, "tenant": whose, **report.counts()})
        return
    what = "would prune" if dry_run else "pruned"
    where = "" if whose is None else f" in tenant {whose!r}"
    rows_text = ", ".join(_count(n, NAMES[k]) for k, n in report.counts().items() if k != "runs")
    console().print(
        f"{what} {_count(report.runs, 'run')}{where} that ended before {cutoff}: {rows_text}",
        markup=False,
        soft_wrap=True,
    )
