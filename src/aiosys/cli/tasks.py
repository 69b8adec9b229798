"""``aiosys tasks list|show|claim|release|complete``: the human task inbox on the command line.

Each command acts as the command's principal (``--api-key``; none: the local principal, who
sees and may decide every task) through the app's inbox (``App.list_tasks`` and the others,
``aiosys.humans.inbox``): the same tenant scoping, role checks, policies and audit records as
the Python API. An edit is checked against the task's form, whose class must be loaded: pass
``--app module:app`` (or set ``app =`` in aiosys.toml) for tasks with a form. The human task
modules are imported by the commands, not when the ``aiosys`` command starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from .common import (
    EXIT_USAGE,
    AppOption,
    JsonFlag,
    StoreOption,
    a_name,
    console,
    echo_json,
    fail,
    parse_json,
    run_async,
    store_app,
    tenant_name,
    with_opened,
)
from .group import CommandGroup
from .times import iso, local

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..humans import TaskRow
    from ..kernel import App

tasks = typer.Typer(
    help="The human task inbox: list, show, claim, release, complete.", cls=CommandGroup
)

ACTIONS = ("approve", "reject", "edit")  # aiosys.humans.decision.ACTIONS, without importing it
STATUSES = ("open", "claimed", "completed", "escalated", "any")

TaskId = Annotated[str, typer.Argument(help="The task's id (aiosys tasks list).")]
TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        callback=tenant_name,
        help="Look only in this tenant (default: the API key's; local: any).",
    ),
]
STATUS_STYLE = {"open": "yellow", "claimed": "cyan", "completed": "green", "escalated": "magenta"}
TIMES = ("due_at", "claimed_at", "decided_at", "created_at", "updated_at")


def task_json(row: TaskRow) -> dict[str, Any]:
    """A task as ``--json`` prints it: ``TaskRow.as_dict`` with its times (and those of
    its escalations) as ISO 8601 UTC; the decision as the workflow gets it."""
    out = row.as_dict()
    for key in TIMES:
        out[key] = iso(out[key])
    out["history"] = [{**h, "at": iso(h.get("at"))} for h in out["history"]]
    return out


def _inbox(
    app: str | None, store: str | None, fn: Callable[[Any], Awaitable[Any]]
) -> Any:  # the app's answer
    """Run ``fn(app)`` on the configured app (or a bare ``aiosys.App``) as the principal."""

    async def body(a: App) -> Any:
        if not hasattr(a, "list_tasks"):
            fail(
                f"the app is a {type(a).__qualname__} from aiosys.kernel, which has no human "
                "tasks: make it with `from aiosys import App`"
            )
        return await fn(a)

    return run_async(lambda: with_opened(store_app(app, store), body))


@tasks.command("list")
def list_tasks(
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="One of: open, claimed, completed, escalated, any (default: those still to "
            "decide: open or claimed, their run live).",
        ),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run", callback=a_name, help="Only this run's tasks.")
    ] = None,
    tenant: TenantOption = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1_000_000, help="At most this many tasks.")
    ] = 50,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """List the tasks you may act on (for one of your roles, or claimed by you), most urgent
    first (due time, then age)."""
    if status is not None and status not in STATUSES:
        fail(f"unknown status {status!r}; use one of: {', '.join(STATUSES)}", EXIT_USAGE)
    rows: list[TaskRow] = _inbox(
        app,
        store,
        lambda a: a.list_tasks(status=status, tenant=tenant, run_id=run_id, limit=limit),
    )
    if json_:
        echo_json([task_json(r) for r in rows])
        return
    console().print(tasks_table(rows))


def tasks_table(rows: list[TaskRow]) -> Table:
    table = Table(title=f"{len(rows)} task{'s' if len(rows) != 1 else ''}", title_justify="left")
    for column in ("task", "name", "role", "status", "run", "workflow", "due", "claimed by"):
        table.add_column(column, no_wrap=column in ("task", "run"))
    for r in rows:
        escalated = f" (escalated {r.escalations}x)" if r.escalations else ""
        table.add_row(
            r.id,
            r.name,
            r.role + escalated,
            Text(r.status, style=STATUS_STYLE.get(r.status, "")),
            r.run_id[:8],
            r.workflow,
            local(r.due_at),
            r.claimed_by or "",
        )
    return table


@tasks.command("show")
def show(
    task_id: TaskId,
    tenant: TenantOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Show a task: what it asks, for whom, its form, its escalations and its decision."""
    row: TaskRow = _inbox(app, store, lambda a: a.get_task(task_id, tenant=tenant))
    if json_:
        echo_json(task_json(row))
    else:
        console().print(task_view(row))


def task_view(row: TaskRow) -> Group:
    import json

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    chain = " -> ".join([row.role, *row.escalate_to[row.escalations :]])
    for label, value in (
        ("task", row.id),
        ("name", row.name),
        ("status", Text(row.status, style=STATUS_STYLE.get(row.status, ""))),
        ("role", chain if row.actionable and row.escalate_to else row.role),
        ("run", f"{row.run_id} ({row.workflow}, {row.run_status or 'deleted'}) effect #{row.seq}"),
        ("tenant", row.tenant),
        ("created", local(row.created_at)),
        ("due", local(row.due_at) if row.due_at is not None else "no SLA" * (row.sla is None)),
        ("claimed by", f"{row.claimed_by} since {local(row.claimed_at)}" if row.claimed_by else ""),
    ):
        if value:
            facts.add_row(label, value)
    for h in row.history:
        to = h.get("to") or "nobody (escalation chain exhausted)"
        facts.add_row("escalated", f"{local(h.get('at'))}: {h.get('from')} -> {to}")
    d = row.decision
    if d is not None:
        by = f" by {d.decided_by}" if d.decided_by else ""
        facts.add_row("decision", f"{d.action}{by} at {local(d.decided_at)}")
        if d.comment:
            facts.add_row("comment", d.comment)
    parts: list[Any] = [facts, Text("data", style="bold")]
    parts.append(Syntax(json.dumps(row.data, indent=2, ensure_ascii=False), "json"))
    if row.form is not None and row.form.get("edit") is False:
        parts.append(Text.assemble(("form ", "bold"), "none: approve or reject (no edit)"))
    elif row.form is not None:
        schema = row.form.get("schema") or {}
        required = set(schema.get("required") or ())
        fields = ", ".join(
            f"{name}{'' if name in required else '?'}: {spec.get('type', 'any')}"
            for name, spec in (schema.get("properties") or {}).items()
        )
        parts.append(Text.assemble(("form ", "bold"), f"{row.form.get('ref')} ({fields})"))
    if d is not None and d.action == "edit":
        parts += [Text("edited data", style="bold")]
        parts.append(Syntax(json.dumps(d.data, indent=2, ensure_ascii=False), "json"))
    return Group(*parts)


def _report(row: TaskRow, json_: bool, what: str) -> None:
    if json_:
        echo_json(task_json(row))
    else:
        console().print(f"task {row.id} ({row.name}): {what}", markup=False)


@tasks.command("claim")
def claim(
    task_id: TaskId,
    tenant: TenantOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Claim a task: from then on only you may complete or release it."""
    row: TaskRow = _inbox(app, store, lambda a: a.claim_task(task_id, tenant=tenant))
    _report(row, json_, f"claimed by {row.claimed_by}")


@tasks.command("release")
def release(
    task_id: TaskId,
    tenant: TenantOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Give a task you claimed back to its role."""
    row: TaskRow = _inbox(app, store, lambda a: a.release_task(task_id, tenant=tenant))
    _report(row, json_, f"released to the role {row.role}")


@tasks.command("complete")
def complete(
    task_id: TaskId,
    action: Annotated[
        str, typer.Option("--action", help="approve, reject, or edit (with --data).")
    ],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="For edit: the edited data as JSON, checked against the task's form; "
            "@file.json reads a file, - stdin.",
        ),
    ] = None,
    comment: Annotated[
        str | None, typer.Option("--comment", help="Kept with the decision.")
    ] = None,
    tenant: TenantOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Decide a task; the run waiting for it resumes at once.

    A task decided already, or one you may not decide (its role, another's claim, a
    policy), is refused; so is an edit its form refuses (the task stays open)."""
    if action not in ACTIONS:
        fail(f"--action must be one of {', '.join(ACTIONS)}, not {action!r}", EXIT_USAGE)
    value = parse_json(data, "--data")
    if action == "edit" and value is None:
        fail("--action edit needs --data: the edited data as JSON", EXIT_USAGE)
    if action != "edit" and data is not None:
        fail(f"--data goes with --action edit only, not {action}", EXIT_USAGE)
    row: TaskRow = _inbox(
        app,
        store,
        lambda a: a.complete_task(task_id, action, data=value, comment=comment, tenant=tenant),
    )
    by = row.decision.decided_by if row.decision is not None else None
    _report(row, json_, f"{action} by {by}; its run resumes")
