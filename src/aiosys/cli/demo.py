"""``aiosys demo``: run the built-in document-intake workflow in this process and narrate it.

The demo plays every side: a worker inside this process (``async with app:``) executes the
runs, one for a scanned letter and one for each of two e-mails; the demo watches the
letter's run's effect log like an operator would; and once every run is parked on its
paralegal review (a human task), it acts as the paralegal ``pat`` from outside the runs,
through the public API (``app.as_principal`` and the inbox: ``list_tasks``, ``claim_task``,
``complete_task``): it edits the letter's summary (after an edit its form refuses) and
approves the e-mails'. The runs resume, file and bill. Then it shows the letter's run: its
result, its effect timeline (the human task in its place), its lineage (the scan's hash, the
models with their versions, the reviewer's decision), and the share of reviews approved
without an edit (``aiosys stats``' ``without_human_edit``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.json import JSON
from rich.text import Text

from ..errors import AiosysError, InvalidInput
from ..kernel import Principal
from ..redact import mask_url
from ..store.base import SUCCEEDED, TERMINAL, WAITING, EffectRow, RunRow
from .common import use_store
from .lineage import lineage_tree
from .render import error_message, timeline_table
from .tasks import tasks_table

if TYPE_CHECKING:
    from ..app import App as PublicApp
    from ..governance.lineage_graph import RunLineage
    from ..humans import TaskRow
    from ..observe.stats import WorkflowStats

WORKFLOW = "document_intake"
TENANT = "demo"
POLL = 0.05  # seconds between looks at the runs: the demo's own pace, not the kernel's
DEADLINE = 60.0  # the demo gives up (and says so) if the runs have not ended by then
#: The paralegal who reviews the summaries, acting from outside the runs.
PARALEGAL = Principal(id="pat", tenant=TENANT, roles=frozenset({"paralegal"}))
#: Pat's rewrite of the letter's summary (an edit, checked against the form ``Review``).
EDITED_SUMMARY = (
    "Water damage claim under policy HX-20931: a pipe burst in the kitchen on 9 March; the "
    "floor and the lower kitchen cabinets need repair, estimated at EUR 4,850."
)
EDIT_COMMENT = "rewritten: policy, cause and estimate first"


@dataclass
class Document:
    """One document the demo feeds in: its label, the run's input and, for a scan, the
    SHA-256 of its bytes."""

    label: str
    input: dict[str, str]
    sha256: str | None = None
    run_id: str = ""


@dataclass
class Outcome:
    """What the demo shows at the end: the letter's run (``row``, ``effects``, ``lineage``),
    the other documents' runs, and the workflow's stats since the demo started."""

    row: RunRow
    effects: list[EffectRow]
    lineage: RunLineage
    documents: list[Document]
    others: list[RunRow]
    stats: WorkflowStats | None


def _describe(e: EffectRow) -> str:
    if e.kind == "step":
        return f"step {e.name}"
    meta = _json(e.meta)
    if e.kind == "model":
        via = f" by {meta['deployment']}" if meta.get("deployment") else ""
        skipped = meta.get("skipped") or {}
        passed = "; ".join(
            f"{m}: no AIOSYS_DEMO_LLM_URL" if m.startswith("demo-llm") else f"{m} {why}"
            for m, why in skipped.items()
        )
        return f"model task {e.name}{via}" + (f" ({passed})" if passed else "")
    if e.kind == "human_task":
        decision = _json(e.output)
        who = f" by {decision.get('decided_by')} ({decision.get('role')})"
        return f"human task {e.name!r}: {decision.get('action')}{who if e.status == 'ok' else ''}"
    if e.kind in ("child_start", "child_result"):
        return f"child workflow {e.name} ({'started' if e.kind == 'child_start' else 'result'})"
    if e.kind == "sleep":
        return "durable timer ctx.sleep(1)"
    return e.kind


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _progress(e: EffectRow) -> Text:
    mark, style = ("✓", "green") if e.status == "ok" else ("✗", "red")
    line = Text.assemble((f"  {mark} ", style), f"#{e.seq} {_describe(e)}")
    if e.attempt > 1:
        line.append(f"  (attempt {e.attempt}: the first failed transiently)", style="yellow")
    if e.status == "error":
        line.append(f"  {error_message(e.error)}", style="red")
    return line


def _waiting_on(effects: list[EffectRow]) -> EffectRow | None:
    return next((e for e in reversed(effects) if e.status == "pending"), None)


def _say(console: Console, text: str, style: str = "") -> None:
    console.print(Text(text, style=style), soft_wrap=True)


async def _review(
    app: PublicApp, tasks: list[TaskRow], docs: list[Document], console: Console
) -> None:
    """Decide every review as the paralegal: edit the letter's summary (first an edit its
    form refuses), approve the others'."""
    label = {d.run_id: d.label for d in docs}
    letter = docs[0].run_id
    _say(console, "  → every document waits for its review: the inbox of pat (role paralegal)")
    console.print(tasks_table(tasks))
    _say(
        console,
        "  → pat decides from outside the runs (app.as_principal(pat), then claim_task and "
        "complete_task); each decision resumes its run at once",
    )
    async with app.as_principal(PARALEGAL):
        for task in sorted(tasks, key=lambda t: t.run_id != letter):
            name = f"task {task.id[:8]} ({label.get(task.run_id, task.run_id[:8])})"
            if task.run_id != letter:
                await app.complete_task(task.id, "approve")
                _say(console, f"  ✓ {name}: approve, summary kept as it was")
                continue
            await app.claim_task(task.id)
            category = (task.data or {}).get("category", "claim")
            try:
                short = {"summary": "Pipe burst.", "category": category}
                await app.complete_task(task.id, "edit", data=short)
            except InvalidInput as exc:
                _say(console, f"  ✗ {name}: an edit refused, the task stays open: {exc}", "red")
            edit = {"summary": EDITED_SUMMARY, "category": category}
            await app.complete_task(task.id, "edit", data=edit, comment=EDIT_COMMENT)
            _say(console, f"  ✓ {name}: claimed, then edit ({EDIT_COMMENT}), checked by Review")


async def _watch(
    app: PublicApp, docs: list[Document], console: Console
) -> tuple[RunRow, list[EffectRow]]:
    """Follow the letter's run, printing each effect as it completes, until every run has
    ended; decide the reviews once every run waits for one."""
    letter = docs[0].run_id
    reported: set[int] = set()
    parked: set[int] = set()
    reviewed = False
    with console.status("starting…") as status:
        while True:
            row = await app.get_run(letter, tenant=TENANT)
            effects = await app.effects(letter, tenant=TENANT)
            for e in effects:
                if e.status != "pending" and e.seq not in reported:
                    reported.add(e.seq)
                    console.print(_progress(e))
            rows = [row] + [await app.get_run(d.run_id, tenant=TENANT) for d in docs[1:]]
            if all(r.status in TERMINAL for r in rows):
                return row, effects
            pending = _waiting_on(effects)
            if not reviewed and pending is not None and pending.kind == "human_task":
                if row.status == WAITING and pending.seq not in parked:
                    parked.add(pending.seq)
                    _say(
                        console,
                        f"  → #{pending.seq} the run is parked on human task 'review' for "
                        "role paralegal (SLA 2d, then senior-paralegal); it holds no worker",
                    )
                async with app.as_principal(PARALEGAL):
                    open_tasks = await app.list_tasks()
                live = [r for r in rows if r.status not in TERMINAL]
                if len(open_tasks) >= len(live):
                    await _review(app, open_tasks, docs, console)
                    reviewed = True
                else:
                    status.update("waiting for the e-mails' runs to reach their review too")
            elif pending is not None and pending.kind == "sleep":
                status.update("durable timer: ctx.sleep(1) (the run holds no worker)")
            elif pending is not None and pending.kind.startswith("child"):
                status.update(f"waiting for child workflow {pending.name}")
            else:
                status.update(f"run {row.status}…")
            await asyncio.sleep(POLL)


def _documents(folder: Path, console: Console) -> list[Document]:
    """The runs' inputs: the letter as a scanned page when OCR can run here, else as text
    (saying why and how to get OCR); the e-mails as text."""
    from ..demo import EMAILS, render_scan

    emails = [Document(f"the e-mail of {_sender(text)}", {"text": text}) for text in EMAILS]
    if shutil.which("tesseract") is None:
        _say(
            console,
            "  (no tesseract here, so the letter goes in as text instead of a scan; "
            "install OCR with: sudo apt-get install tesseract-ocr)",
        )
        return [Document("the letter", {}), *emails]
    try:
        path = render_scan(folder / "letter.png")
    except ImportError as exc:  # Pillow comes with the offline extra
        _say(
            console,
            f"  (cannot render the scan: {exc}; pip install 'aiosys[offline]'. "
            "The letter goes in as text.)",
        )
        return [Document("the letter", {}), *emails]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    _say(console, f"  a letter arrives as a scanned page: {path}")
    _say(console, f"    its SHA-256 (sha256sum): {digest}")
    return [Document("the scanned letter", {"scan": str(path)}, digest), *emails]


def _sender(text: str) -> str:
    """The name on a letter's ``From:`` line."""
    first = text.split("\n", 1)[0].removeprefix("From:")
    return first.split("<", 1)[0].strip() or "an unknown sender"


async def run_demo(store: str, console: Console) -> Outcome:
    """Start the demo's runs and follow them to their end (see the module docstring)."""
    from ..demo import app

    use_store(app, store)
    with tempfile.TemporaryDirectory(prefix="aiosys-demo-") as folder:
        return await _run(app, _documents(Path(folder), console), console)


async def _run(app: PublicApp, docs: list[Document], console: Console) -> Outcome:
    async with app:
        since = app.store.clock()
        _say(
            console,
            f"aiosys demo: document intake on {mask_url(app.store.url)} (worker in this process)",
            "bold",
        )
        _say(console, f"  {len(docs) - 1} e-mails arrive beside it, as text")
        for doc in docs:
            handle = await app.start(WORKFLOW, doc.input, tenant=TENANT)
            doc.run_id = handle.id
            _say(console, f"  run {handle.id} started: {doc.label}")
        _say(console, f"the run of {docs[0].label}, effect by effect:", "bold")
        try:
            async with asyncio.timeout(DEADLINE):
                row, effects = await _watch(app, docs, console)
        except TimeoutError:
            raise AiosysError(
                f"the demo runs did not end within {DEADLINE:.0f}s; inspect them with: "
                f"aiosys runs list --workflow {WORKFLOW}"
            ) from None
        others = [await app.get_run(d.run_id, tenant=TENANT) for d in docs[1:]]
        lineage = await app.lineage.show(row.id, tenant=TENANT)
        stats = await app.stats(since=since, workflow=WORKFLOW, tenant=TENANT)
    return Outcome(row, effects, lineage, docs, others, stats.of_workflow(WORKFLOW))


def show_outcome(console: Console, url: str, outcome: Outcome) -> None:
    """The letter's run's result (or error), its effect timeline and lineage; the other
    documents' outcomes; the share of reviews approved without an edit."""
    row = outcome.row
    secs = (row.finished_at or row.updated_at) - (row.started_at or row.created_at)
    console.print()
    console.print(Text.assemble(("result", "bold"), f" ({row.status} in {secs:.1f}s):"))
    if row.status == SUCCEEDED:
        console.print(JSON(row.result or "null"), soft_wrap=True)
    else:
        console.print(Text(error_message(row.error), style="red"))
    console.print()
    console.print(timeline_table(outcome.effects))
    console.print()
    _say(console, f"lineage of run {row.id} (aiosys lineage show):", "bold")
    console.print(lineage_tree(outcome.lineage))
    console.print()
    for doc, other in zip(outcome.documents[1:], outcome.others, strict=True):
        _say(console, f"{doc.label}: run {other.id} {other.status}: {_brief(other)}")
    s = outcome.stats
    if s is not None and s.without_human_edit is not None:
        _say(
            console,
            f"reviews approved without an edit: {s.without_human_edit:.0%} of "
            f"{s.human_reviews} (aiosys stats: without_human_edit of {WORKFLOW})",
        )
    where = f"--store {mask_url(url)}"
    _say(console, f"\ninspect it again: aiosys runs show {row.id} {where}")
    _say(console, f"                  aiosys lineage show {row.id} {where}")
    _say(console, f"                  aiosys tasks list --status completed {where}")


def _brief(row: RunRow) -> str:
    """A run's outcome in a line: its category, review, filing and invoice."""
    if row.status != SUCCEEDED:
        return error_message(row.error)
    r = _json(row.result)
    review = r.get("review") or {}
    invoice = r.get("invoice") or {}
    billed = f", invoice {invoice.get('invoice')} EUR {invoice.get('total', 0):.2f}"
    return (
        f"{r.get('category')}, {review.get('action')} by {review.get('by')}, filed as "
        f"{r.get('filed_as')}" + (billed if invoice else ", not billed")
    )
