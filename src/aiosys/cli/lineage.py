"""``aiosys lineage show|runs|export``: what produced a run's result, which runs used a model
version, and a run's lineage as OpenLineage events.

``show`` draws the graph back from the run's result: each effect it was found to come from,
with its inputs' and output's content hashes, model@version, task@version, the document
file a model read (by the SHA-256 of its bytes), policy decisions and a person's decision,
then the effects those came from, down to the run's input.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from .common import (
    EXIT_USAGE,
    AppOption,
    JsonFlag,
    StoreOption,
    console,
    echo_json,
    err,
    fail,
    run_async,
    store_app,
    tenant_name,
    with_opened,
)
from .group import CommandGroup
from .times import iso, local

if TYPE_CHECKING:
    from ..governance.lineage import Lineage
    from ..governance.lineage_graph import EffectLineage, RunLineage
    from ..kernel import App

lineage = typer.Typer(
    help="Lineage: what produced a run's result, which runs used a model version, OpenLineage "
    "export.",
    cls=CommandGroup,
)

RunId = Annotated[str, typer.Argument(help="The run's id.")]
TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        callback=tenant_name,
        help="Look only in this tenant (default: the caller's, or any).",
    ),
]


def _of(a: App) -> Lineage:
    from ..governance.lineage import Lineage, LineageSettings

    found = getattr(a, "lineage", None)
    if isinstance(found, Lineage):
        return found
    return Lineage(a, LineageSettings())  # a kernel-only app: reading needs no settings


@lineage.command("show")
def show(
    run_id: RunId,
    tenant: TenantOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Draw what produced the run's result, back to the run's input.

    Each effect with its inputs' and output's hashes (SHA-256 of RFC 8785 JSON), where each
    input came from, model@version, task@version, policy decisions and a person's decision;
    child runs under their start. --json: the whole graph."""

    async def body(a: App) -> RunLineage:
        return await _of(a).show(run_id, tenant=tenant)

    found = run_async(lambda: with_opened(store_app(app, store), body))
    if json_:
        echo_json(found.as_dict())
    else:
        console().print(lineage_tree(found))


@lineage.command("runs")
def runs(
    model: Annotated[
        str,
        typer.Option(
            "--model", help="The model card as id@version (that version) or id (any version)."
        ),
    ],
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only calls since then: a duration back (7d, 12h) or ISO 8601."
        ),
    ] = None,
    tenant: TenantOption = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="At most this many runs.")
    ] = 50,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """List the runs whose model calls this model card answered, newest use first (a recall
    when a model version turns out bad)."""
    if not model.strip() or model.strip().startswith("@"):
        fail(f"--model must be a card id or id@version, not {model!r}", EXIT_USAGE)
    if since is not None:
        from ..durations import parse_before

        try:
            parse_before(since, time.time())
        except ValueError as exc:
            fail(f"--since {exc}", EXIT_USAGE)

    async def body(a: App) -> list[dict[str, Any]]:
        return await _of(a).runs(model, since=since, tenant=tenant, limit=limit)

    found = run_async(lambda: with_opened(store_app(app, store), body))
    if json_:
        echo_json(
            [
                {
                    **r,
                    "created_at": iso(r["created_at"]),
                    "first_at": iso(r["first_at"]),
                    "last_at": iso(r["last_at"]),
                }
                for r in found
            ]
        )
        return
    console().print(_runs_table(model, found))


@lineage.command("export")
def export(
    run_id: RunId,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    tenant: TenantOption = None,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Write the run's lineage (its child runs' too) as OpenLineage run events.

    One JSON object a line (the OpenLineage file transport's format), oldest first."""

    async def body(a: App) -> list[str]:
        from openlineage.client.serde import Serde

        events = await _of(a).openlineage(run_id, tenant=tenant)
        return [Serde.to_json(e) for e in events]

    lines = run_async(lambda: with_opened(store_app(app, store), body))
    text = "".join(line + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    err.print(f"exported {len(lines)} OpenLineage events to {escape(str(output))}", soft_wrap=True)


# ---- rendering --------------------------------------------------------------------------


def short(h: str | None) -> str:
    """A hash as a terminal shows it: ``sha256:`` and its first 12 hex digits."""
    return "(no hash)" if h is None else f"sha256:{h[:12]}…"


def lineage_tree(run: RunLineage) -> Tree:
    """``run``'s lineage as a tree rooted at its result (see the module docstring)."""
    tree = Tree(_run_label(run))
    _fill(tree, run)
    return tree


def _run_label(run: RunLineage) -> Text:
    label = Text()
    label.append(f"run {run.run_id} ", style="bold")
    label.append(f"{run.workflow}@{run.version} {run.status} (tenant {run.tenant})")
    return label


def _fill(tree: Tree, run: RunLineage) -> None:
    by_seq = {e.seq: e for e in run.effects}
    shown: set[int] = set()
    result = tree.add(Text(f"result {short(run.result)}", style="bold"))
    if run.result is None:
        result.add(Text("no result (yet)", style="dim"))
    for seq in reversed(run.result_from):
        _effect_node(result, run, by_seq[seq], by_seq, shown)
    if run.result is not None and not run.result_from:
        result.add(
            Text("not found in any effect's output: made by the workflow's code", style="dim")
        )
    rest = [e for e in run.effects if e.seq not in shown and e.kind not in ("now", "sleep")]
    if rest:
        also = tree.add(Text("also in this run (not found to feed its result)", style="dim"))
        for e in rest:
            _effect_node(also, run, e, by_seq, shown)
    tree.add(Text(f"input {short(run.input)}", style="bold"))
    if run.truncated:
        tree.add(Text("child runs past the depth or size limit left out", style="yellow"))


def _effect_node(
    parent: Tree,
    run: RunLineage,
    e: EffectLineage,
    by_seq: dict[int, EffectLineage],
    shown: set[int],
) -> None:
    if e.seq in shown:
        parent.add(Text(f"#{e.seq} {e.kind} {e.name} (shown above)", style="dim"))
        return
    shown.add(e.seq)
    node = parent.add(_effect_label(e))
    for name, h in e.inputs.items():
        line = Text(f"in {name} {short(h)}")
        srcs = e.sources.get(name, [])
        if srcs:
            line.append(" ← " + ", ".join(_source(s, by_seq) for s in srcs), style="cyan")
        node.add(line)
    if e.document is not None:
        node.add(Text(f"document {short(e.document)} (the file's bytes, as sha256sum prints it)"))
    if e.output is not None:
        node.add(Text(f"out {short(e.output)}"))
    for d in e.policies:
        policies = ", ".join(d.get("policies") or []) or "no policy"
        node.add(
            Text(
                f"policy {d.get('decision')} {d.get('action')} {d.get('resource')} by "
                f"{policies} (set {str(d.get('policy_version'))[:12]})"
            )
        )
    if e.human is not None:
        person = e.human
        who = person.decided_by or "nobody"
        when = local(person.decided_at) if person.decided_at is not None else "?"
        role = f" as {person.role}" if person.role else ""
        note = f": {person.comment}" if person.comment else ""
        node.add(Text(f"human {person.action} by {who}{role} at {when}{note}", style="magenta"))
    if e.error is not None:
        node.add(Text(f"error {e.error}", style="red"))
    if not e.recorded and e.kind in ("step", "model", "child_start", "human_task"):
        node.add(Text("no input hashes recorded (it took none, or lineage was off)", style="dim"))
    if e.child is not None:
        child = node.add(_run_label(e.child))
        _fill(child, e.child)
    for sources in e.sources.values():
        for s in sources:
            if s == "input":
                continue
            if isinstance(s, int) and s in by_seq:
                _effect_node(node, run, by_seq[s], by_seq, shown)
    if any("input" in s for s in e.sources.values()):
        node.add(Text(f"run input {short(run.input)}", style="cyan"))


def _effect_label(e: EffectLineage) -> Text:
    label = Text()
    label.append(f"#{e.seq} {e.kind} {e.name}", style="bold")
    style = {"ok": "green", "error": "red", "pending": "yellow"}.get(e.status, "")
    label.append(f" {e.status}", style=style)
    if e.model is not None:
        label.append(f" · model {e.model}")
    if e.task is not None:
        label.append(f" · task {e.task}")
    return label


def _source(s: int | str, by_seq: dict[int, EffectLineage]) -> str:
    if s == "input":
        return "run input"
    if isinstance(s, int) and s in by_seq:
        return f"#{s} {by_seq[s].name}"
    return str(s)


def _runs_table(model: str, rows: list[dict[str, Any]]) -> Table:
    n = len(rows)
    table = Table(
        title=f"{n} run{'s' if n != 1 else ''} whose model calls {model} answered",
        title_justify="left",
    )
    table.add_column("id", no_wrap=True, style="bold")
    table.add_column("workflow")
    table.add_column("status")
    table.add_column("tenant")
    table.add_column("models")
    table.add_column("calls", justify="right")
    table.add_column("last used")
    table.add_column("parent")
    for r in rows:
        table.add_row(
            Text(r["run_id"]),
            Text(f"{r['workflow']}@{r['version']}"),
            Text(r["status"]),
            Text(r["tenant"]),
            Text(", ".join(r["models"])),
            str(r["calls"]),
            local(r["last_at"]),
            Text(r["parent_id"] or ""),
        )
    return table
