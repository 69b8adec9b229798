"""Runs and effects as rich tables; as JSON objects by ``aiosys.observe.run_view`` (the
presenter the console shares), whose names are re-exported here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..observe import run_view as presenter
from ..observe.run_view import (
    decoded,
    effect_dict,
    error_message,
    millis,
    model_columns,
    model_usage,
    retries_of,
    run_detail,
    run_dict,
)
from ..store.base import EffectRow, RunRow
from .attempts import Attempt, attempts_table, gap_text
from .times import local

STATUS_STYLE = {
    "pending": "cyan",
    "running": "blue",
    "waiting": "yellow",
    "succeeded": "green",
    "failed": "red",
    "dead": "bold red",
    "cancelled": "magenta",
    "ok": "green",
    "error": "red",
}


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def runs_table(rows: list[RunRow]) -> Table:
    table = Table(title=f"{len(rows)} run{'s' if len(rows) != 1 else ''}", title_justify="left")
    table.add_column("id", no_wrap=True, style="bold")
    table.add_column("workflow")
    table.add_column("status")
    table.add_column("tenant")
    table.add_column("created")
    table.add_column("duration", justify="right")
    for r in rows:
        ms = millis(r.started_at, r.finished_at)
        table.add_row(
            Text(r.id),
            Text(f"{r.workflow}@{r.version}"),
            _status(r.status),
            Text(r.tenant),
            local(r.created_at),
            "" if ms is None else f"{ms:.0f} ms",
        )
    return table


def timeline_table(effects: list[EffectRow], attempts: Sequence[Attempt] = ()) -> Table:
    """The effect timeline of a run: what it did, in call order. With its ``attempts``,
    the run attempt each effect was recorded under (``by``, as in the attempts table) and a
    row for each gap (a lease that expired under a worker), where it fell."""
    table = Table(title="effect timeline", title_justify="left")
    if attempts:
        table.add_column("by", justify="right")
    table.add_column("seq", justify="right")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("attempt", justify="right")
    table.add_column("status")
    table.add_column("duration (ms)", justify="right")
    table.add_column("model / person")
    table.add_column("tokens in/out", justify="right")
    table.add_column("cost", justify="right")
    table.add_column("error")
    gaps = [a for a in attempts if a.gap is not None]
    for e in effects:
        while gaps and (e.epoch or 0) >= gaps[0].number:
            _gap_row(table, gaps.pop(0))
        ms = millis(e.started_at, e.finished_at)
        model, tokens, cost = model_columns(e.meta)
        model = model or _person(e)
        by = ["" if e.epoch is None else f"#{e.epoch}"] if attempts else []
        for failed in retries_of(e.meta):  # each failed attempt, and when the next was due
            table.add_row(
                *by,
                str(e.seq),
                Text(e.kind),
                Text(e.name),
                str(failed.get("attempt", "")),
                Text("retried", style="yellow"),
                *[""] * 4,
                Text(
                    f"{failed.get('error', '')} (next attempt due "
                    f"{local(_number(failed.get('retry_at')))})",
                    style="yellow",
                ),
            )
        approval = _approval(e.meta)
        if approval is not None:  # the person's approval it waited for (humans.approval)
            table.add_row(*by, str(e.seq), Text(e.kind), Text(e.name), "", *approval)
        table.add_row(
            *by,
            str(e.seq),
            Text(e.kind),
            Text(e.name),
            str(e.attempt),
            _status(e.status),
            "" if ms is None else f"{ms:.1f}",
            Text(model),
            tokens,
            cost,
            Text(error_message(e.error), style="red"),
        )
    for attempt in gaps:  # recoveries after the last effect recorded
        _gap_row(table, attempt)
    return table


def _gap_row(table: Table, attempt: Attempt) -> None:
    assert attempt.gap is not None
    what = Text(f"lease expired: {gap_text(attempt.gap)}", style="yellow")
    table.add_row(f"#{attempt.number}", "", Text("gap", style="bold yellow"), what)


def _approval(meta: str | None) -> tuple[Text, str, str, str, str, Text] | None:
    """The timeline cells (status to error) of the approval an effect waited for
    (``meta["approval"]``): who decided, as what, when; or the role it waits for."""
    data = decoded(meta)
    found = data.get("approval") if isinstance(data, dict) else None
    if not isinstance(found, dict):
        return None
    task = str(found.get("task_id", ""))[:8]
    if found.get("status") == "open":
        what = f"waiting for a {found.get('role', '?')} to approve (task {task})"
        return Text("approval", style="yellow"), "", "", "", "", Text(what, style="yellow")
    action = str(found.get("action", "?"))
    approved = action in ("approve", "edit")
    what = (
        f"{action} by {found.get('decided_by')} as {found.get('role')} at "
        f"{local(_number(found.get('decided_at')))} (task {task})"
    )
    style = "green" if approved else "red"
    return Text("approval", style=style), "", "", "", "", Text(what, style=style)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _person(e: EffectRow) -> str:
    """Who decided a human task and how (``pat: edit``), from its record; blank for an
    open one and for other effects."""
    if e.kind != "human_task":
        return ""
    data = decoded(e.meta)
    if not isinstance(data, dict) or not data.get("action"):
        return ""
    who = data.get("decided_by")
    return f"{who}: {data['action']}" if who else str(data["action"])


def _short(value: Any, limit: int = 400) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_summary(row: RunRow) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    ms = millis(row.started_at, row.finished_at)
    fields: list[tuple[str, RenderableType]] = [
        ("run", row.id),
        ("workflow", f"{row.workflow}@{row.version}"),
        ("status", _status(row.status)),
        ("tenant", row.tenant),
        ("queue", row.queue),
        ("created", local(row.created_at)),
        ("started", local(row.started_at)),
        ("finished", local(row.finished_at)),
    ]
    if ms is not None:
        fields.append(("duration", f"{ms:.0f} ms"))
    if row.parent_id:
        fields.append(("parent", row.parent_id))
    if row.idempotency_key:
        fields.append(("idempotency key", row.idempotency_key))
    fields.append(("input", Text(_short(decoded(row.input)))))
    if row.result is not None:
        fields.append(("result", Text(_short(decoded(row.result)))))
    if row.error is not None:
        fields.append(("error", Text(error_message(row.error), style="red")))
    for name, value in fields:
        grid.add_row(name, Text(value) if isinstance(value, str) else value)
    return grid


def run_view(row: RunRow, effects: list[EffectRow], attempts: Sequence[Attempt] = ()) -> Group:
    """``runs show``: the run's summary, its model usage, its attempts (which worker ran
    each), then its effect timeline with the gaps."""
    parts: list[Any] = [run_summary(row)]
    usage = model_usage(effects)
    if usage["calls"]:
        parts.append(
            Text(
                f"models    {usage['calls']} call(s), {usage['input_tokens']} tokens in, "
                f"{usage['output_tokens']} out, cost {usage['cost']:.6f}"
            )
        )
    if attempts:
        parts += [Text(""), attempts_table(list(attempts))]
    parts += [Text(""), timeline_table(effects, attempts)]
    return Group(*parts, *tracebacks(row, effects))


def tracebacks(row: RunRow, effects: list[EffectRow]) -> list[Text]:
    """The recorded tracebacks of the failed effects and of the run, each once
    (``aiosys.observe.run_view.tracebacks``), as lines to print."""
    out: list[Text] = []
    for title, tb in presenter.tracebacks(row, effects):
        out += [Text(""), Text(title, style="bold"), Text(tb, style="red")]
    return out


__all__ = [
    "STATUS_STYLE",
    "effect_dict",
    "error_message",
    "millis",
    "model_usage",
    "run_detail",
    "run_dict",
    "run_summary",
    "run_view",
    "runs_table",
    "timeline_table",
    "tracebacks",
]
