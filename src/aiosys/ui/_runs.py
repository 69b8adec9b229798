"""The runs pages: the list (filters, live status), a run's page (summary, cost, effect
timeline with retries, tracebacks and the human approvals and decisions its effects waited
for, trace waterfall, its human tasks; cancel, resume, signal) and the start form.

What a run shows is what ``aiosys runs show`` shows (``aiosys.observe.run_view``): records as
stored, so a model's redacted request and answer keep their pseudonyms here.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidInput
from ..observe import run_view
from ..observe.spans import span_tree
from ..observe.stats import window_start
from ..store.base import STATUSES, TERMINAL, EffectRow, RunRow
from ._console import Console, one_of

#: The time filter of the runs list: created within this much of now ("" for any time).
SINCE = ("", "1h", "24h", "7d", "30d")
LIMITS = (25, 50, 100, 200)
POLL = "every 2s"  # how often a live list or run asks again (htmx)


@dataclass(frozen=True, slots=True)
class RunFilters:
    """The runs list's query: ``status``, ``workflow``, ``since`` (a ``SINCE`` choice) and
    ``limit``; ``InvalidInput`` for values outside them."""

    status: str = ""
    workflow: str = ""
    since: str = ""
    limit: int = 50

    @classmethod
    def of(cls, request: Request) -> RunFilters:
        q = request.query_params
        status = one_of(q.get("status", ""), ("", *STATUSES), "the status")
        since = one_of(q.get("since", ""), SINCE, "the time filter")
        try:
            limit = int(q.get("limit", "50"))
        except ValueError:
            raise InvalidInput(f"limit must be a whole number, not {q.get('limit')!r}") from None
        if not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be from 1 to 1000, not {limit}")
        return cls(status, q.get("workflow", "").strip(), since, limit)

    def query(self) -> str:
        parts = {"status": self.status, "workflow": self.workflow, "since": self.since}
        items = [f"{k}={v}" for k, v in parts.items() if v]
        return "&".join([*items, f"limit={self.limit}"])


async def list_runs(console: Console, f: RunFilters) -> list[RunRow]:
    """The runs the bound principal may see, newest first, created since ``f.since`` (the
    store filters: ``App.list_runs(since=...)``)."""
    app = console.app
    start = window_start(f.since, app.store.clock()) if f.since else None
    return await app.list_runs(
        status=f.status or None, workflow=f.workflow or None, since=start, limit=f.limit
    )


def run_facts(row: RunRow) -> dict[str, Any]:
    """The run's summary for its page: ``run_view.run_detail`` and its duration."""
    return {
        **run_view.run_detail(row),
        "duration_ms": run_view.millis(row.started_at, row.finished_at),
        "error_message": run_view.error_message(row.error),
        "terminal": row.status in TERMINAL,
        "created": row.created_at,
        "started": row.started_at,
        "finished": row.finished_at,
    }


#: What an approval row says of a decision's action.
OUTCOMES = {
    "approve": "approved",
    "reject": "rejected",
    "edit": "edited",
    "escalated": "escalated",
}


def approval_of(effect: dict[str, Any]) -> dict[str, Any] | None:
    """The human decision an effect (``run_view.effect_dict``) waited for, as its approval
    row shows it, or None: a ``human_task`` effect's (``ctx.human_task``; its output is the
    decision) or a policy's approval of any effect (``meta["approval"]``, ``aiosys.humans.
    approval``). Keys: ``task_id``, ``kind`` (``human task`` or ``policy approval``),
    ``outcome`` (``approved``, ``rejected``, ``edited``, ``escalated``; ``waiting`` while no
    one decided), ``by`` (the principal id; None when nobody decided), ``role``, ``at``
    (seconds since the epoch), ``comment``, ``policies`` (the approval's) and ``due_at``.
    Read from the run's own records, so whoever may read the run sees who decided and when,
    and nobody else (the run's tenant)."""
    meta = effect["meta"] if isinstance(effect["meta"], dict) else {}
    output = effect["output"] if isinstance(effect["output"], dict) else {}
    if effect["kind"] == "human_task":
        kind, found, policies = "human task", output, []
        if effect["status"] == "pending":
            found = {"task_id": output.get("task_id") or meta.get("task_id")}
            found["due_at"] = output.get("due_at")
        elif "action" not in found:  # it failed: its own row says why
            return None
    elif isinstance(meta.get("approval"), dict):
        kind, found = "policy approval", meta["approval"]
        policies = [str(p) for p in found.get("policies") or ()]
    else:
        return None
    task_id = found.get("task_id")
    if not isinstance(task_id, str):
        return None
    action = found.get("action")
    at = found.get("decided_at")
    due = found.get("due_at")
    return {
        "task_id": task_id,
        "kind": kind,
        "outcome": OUTCOMES.get(action, "waiting") if isinstance(action, str) else "waiting",
        "by": found.get("decided_by"),
        "role": found.get("role"),
        "at": float(at) if isinstance(at, int | float) else None,
        "comment": found.get("comment"),
        "policies": policies,
        "due_at": float(due) if isinstance(due, int | float) else None,
    }


def timeline(effects: list[EffectRow]) -> list[dict[str, Any]]:
    """One entry per effect in call order: ``run_view.effect_dict``, its model columns,
    error message, traceback, failed attempts (``retries``) and the human decision it
    waited for (``approval``: ``approval_of``, or None)."""
    out = []
    for e in effects:
        model, tokens, cost = run_view.model_columns(e.meta)
        entry = {
            **run_view.effect_dict(e),
            "model": model,
            "tokens": tokens,
            "cost": cost,
            "error_message": run_view.error_message(e.error),
            "traceback": run_view.traceback_of(e.error),
            "retries": run_view.retries_of(e.meta),
        }
        entry["approval"] = approval_of(entry)
        out.append(entry)
    return out


def waterfall(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trace's spans as waterfall rows: ``span``, ``depth``, ``offset_ms``,
    ``took_ms``, and ``x``/``width`` in percent of the run's span (at least 0.5% wide, so a
    short effect still shows)."""
    if not spans:
        return []
    t0 = spans[0]["start_ns"]
    total = max(max(s["end_ns"] for s in spans) - t0, 1)
    rows = []
    for span, depth in span_tree(spans):
        start, end = span["start_ns"], span["end_ns"]
        x = min((start - t0) / total * 100, 99.5)
        width = max((end - start) / total * 100, 0.5)
        rows.append(
            {
                "span": span,
                "depth": depth,
                "offset_ms": (start - t0) / 1e6,
                "took_ms": (end - start) / 1e6,
                "x": round(x, 3),
                "width": round(min(width, 100 - x), 3),
            }
        )
    return rows


def parse_json_field(text: str, what: str) -> Any:
    """The value of a JSON form field; empty is None. ``InvalidInput`` naming ``what`` for
    text that is not JSON, nests deeper than the parser follows, or holds an integer of
    more digits than Python converts (each was a 500: only a syntax error was caught)."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput(
            f"{what} nests arrays and objects deeper than the parser can follow "
            f"(about {sys.getrecursionlimit()} levels)"
        ) from None
    except ValueError:  # an integer over Python's digit limit (sys.get_int_max_str_digits)
        raise InvalidInput(
            f"{what} holds an integer of more than {sys.get_int_max_str_digits()} digits; "
            "send it as a string"
        ) from None


def field(form: Any, name: str) -> str:
    """A form's text field (absent: ""). ``InvalidInput`` naming it when it was sent as a
    file (a multipart upload): it was read as empty, and a run started with its defaults."""
    value = form.get(name, "")
    if not isinstance(value, str):
        raise InvalidInput(f"the form field {name!r} must be text, not a file")
    return value


def router(console: Console) -> APIRouter:
    r = APIRouter(route_class=console.route_class())
    app = console.app

    async def live_context(run_id: str) -> dict[str, Any]:
        row = await app.get_run(run_id)
        effects = await app.effects(run_id)
        spans = await app.trace(run_id)
        tasks = await app.list_tasks(run_id=run_id, status="any")
        steps = timeline(effects)
        return {
            "run": run_facts(row),
            "effects": steps,
            "retries": sum(len(e["retries"]) for e in steps),
            "tracebacks": run_view.tracebacks(row, effects),
            "usage": run_view.model_usage(effects),
            "waterfall": waterfall(spans),
            "trace_id": spans[0]["trace_id"] if spans else "",
            "tasks": tasks,
            "poll": POLL,
        }

    @r.get("/runs", name="runs")
    async def runs(request: Request) -> Response:
        f = RunFilters.of(request)
        return console.page(
            request,
            "runs.html",
            title="Runs",
            rows=await list_runs(console, f),
            f=f,
            statuses=STATUSES,
            since_choices=SINCE,
            limits=LIMITS,
            workflows=sorted(app.workflows),
            poll=POLL,
        )

    @r.get("/runs/rows", name="runs_rows")
    async def runs_rows(request: Request) -> Response:
        f = RunFilters.of(request)
        rows = await list_runs(console, f)
        return console.fragment(request, "runs_rows.html", rows=rows, f=f, poll=POLL)

    @r.post("/runs", name="start_run")
    async def start_run(request: Request) -> Response:
        form = await request.form()
        workflow = field(form, "workflow").strip()
        data = parse_json_field(field(form, "input"), "the input")
        if data is not None and not isinstance(data, dict):
            raise InvalidInput("the input is a JSON object of the workflow's parameters")
        key = field(form, "idempotency_key").strip() or None
        handle = await app.start(workflow, data, idempotency_key=key)
        said = "started" if handle.created else "already started with that idempotency key"
        return console.back(request, f"/runs/{handle.id}", "ok", f"run {handle.id} {said}")

    @r.get("/runs/{run_id}", name="run")
    async def run(request: Request, run_id: str) -> Response:
        context = await live_context(run_id)
        return console.page(request, "run.html", title=f"Run {run_id}", **context)

    @r.get("/runs/{run_id}/live", name="run_live")
    async def run_live(request: Request, run_id: str) -> Response:
        return console.fragment(request, "run_live.html", **await live_context(run_id))

    @r.post("/runs/{run_id}/cancel", name="cancel_run")
    async def cancel(request: Request, run_id: str) -> Response:
        reason = field(await request.form(), "reason").strip() or "cancelled in the console"
        row = await app.cancel(run_id, reason)
        said = (
            "cancelled"
            if row.status in TERMINAL
            else "asked to cancel (it stops at its next effect)"
        )
        return console.back(request, f"/runs/{run_id}", "ok", f"run {said}")

    @r.post("/runs/{run_id}/resume", name="resume_run")
    async def resume(request: Request, run_id: str) -> Response:
        await app.resume(run_id)
        return console.back(request, f"/runs/{run_id}", "ok", "run resumed: a worker will take it")

    @r.post("/runs/{run_id}/signal", name="signal_run")
    async def signal(request: Request, run_id: str) -> Response:
        form = await request.form()
        name = field(form, "name").strip()
        if not name:
            raise InvalidInput("a signal needs a name")
        payload = parse_json_field(field(form, "payload"), "the payload")
        await app.signal(run_id, name, payload)
        return console.back(request, f"/runs/{run_id}", "ok", f"signal {name!r} sent")

    return r


__all__ = ["RunFilters", "approval_of", "router", "timeline", "waterfall"]
