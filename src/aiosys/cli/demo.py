"""``aiosys demo``: run the built-in document-intake workflow in this process and narrate it.

The demo plays both sides: a worker inside this process (``async with app:``) executes the
run, while the demo watches the run's effect log like an operator would, and sends the
``approve`` signal from outside the workflow once the run is parked waiting for it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

from rich.console import Console
from rich.json import JSON
from rich.text import Text

from ..errors import AiosysError
from ..kernel import App
from ..redact import mask_url
from ..store.base import SUCCEEDED, TERMINAL, WAITING, EffectRow, RunRow
from .common import use_store
from .render import error_message, timeline_table

WORKFLOW = "document_intake"
POLL = 0.05  # seconds between looks at the run: the demo's own pace, not the kernel's
DEADLINE = 60.0  # the demo gives up (and says so) if the run has not ended by then


def _describe(e: EffectRow) -> str:
    if e.kind == "step":
        return f"step {e.name}"
    if e.kind == "model":
        meta = json.loads(e.meta or "{}")
        via = f" by {meta['model']}" if meta.get("model") else ""
        skipped = meta.get("skipped") or {}
        passed = "; ".join(
            f"{m}: no AIOSYS_DEMO_LLM_URL" if m.startswith("demo-llm") else f"{m} {why}"
            for m, why in skipped.items()
        )
        return f"model task {e.name}{via}" + (f" ({passed})" if passed else "")
    if e.kind == "signal":
        return f"signal {e.name!r}"
    if e.kind in ("child_start", "child_result"):
        return f"child workflow {e.name} ({'started' if e.kind == 'child_start' else 'result'})"
    if e.kind == "sleep":
        return "durable timer ctx.sleep(1)"
    return e.kind


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


async def _watch(
    app: App, run_id: str, console: Console, tenant: str | None
) -> tuple[RunRow, list[EffectRow]]:
    """Follow the run until it ends, printing each effect as it completes; send ``approve``
    once the run is parked on it."""
    reported: set[int] = set()
    signalled = False
    with console.status("starting…") as status:
        while True:
            row = await app.get_run(run_id, tenant=tenant)
            effects = await app.effects(run_id, tenant=tenant)
            for e in effects:
                if e.status != "pending" and e.seq not in reported:
                    reported.add(e.seq)
                    console.print(_progress(e))
            if row.status in TERMINAL:
                return row, effects
            pending = _waiting_on(effects)
            if pending is not None and pending.kind == "signal" and row.status == WAITING:
                if not signalled:
                    status.update("the run waits for signal 'approve': sending it as a reviewer")
                    console.print(
                        "  → the run is parked on ctx.wait_for('approve'); "
                        "sending the signal from outside the workflow",
                        soft_wrap=True,
                    )
                    payload = {"decision": "approved", "by": "reviewer@example.org"}
                    await app.signal(run_id, "approve", payload, tenant=tenant)
                    signalled = True
            elif pending is not None and pending.kind == "sleep":
                status.update("durable timer: ctx.sleep(1) (the run holds no worker)")
            elif pending is not None and pending.kind.startswith("child"):
                status.update(f"waiting for child workflow {pending.name}")
            else:
                status.update(f"run {row.status}…")
            await asyncio.sleep(POLL)


def _scan(folder: Path, console: Console) -> dict[str, str]:
    """The run's input: the letter as a scanned page when OCR can run here, else as text
    (saying why and how to get OCR)."""
    from ..demo import render_scan

    if shutil.which("tesseract") is None:
        console.print(
            "  (no tesseract here, so the letter goes in as text instead of a scan; "
            "install OCR with: sudo apt-get install tesseract-ocr)",
            markup=False,
            soft_wrap=True,
        )
        return {}
    try:
        path = render_scan(folder / "letter.png")
    except ImportError as exc:  # Pillow comes with the offline extra
        console.print(
            f"  (cannot render the scan: {exc}; pip install 'aiosys[offline]'. "
            "The letter goes in as text.)",
            markup=False,
            soft_wrap=True,
        )
        return {}
    console.print(f"  the letter arrives as a scanned page: {path}", markup=False)
    return {"scan": str(path)}


async def run_demo(store: str, console: Console) -> tuple[RunRow, list[EffectRow]]:
    """Start and follow one run of the demo workflow to its end: the run and its effects."""
    from ..demo import app

    use_store(app, store)
    with tempfile.TemporaryDirectory(prefix="aiosys-demo-") as folder:
        return await _run(app, _scan(Path(folder), console), console)


async def _run(app: App, input: dict[str, str], console: Console) -> tuple[RunRow, list[EffectRow]]:
    async with app:
        console.print(
            Text.assemble(
                ("aiosys demo", "bold"),
                f": document intake on {mask_url(app.store.url)} (worker in this process)",
            ),
            soft_wrap=True,
        )
        handle = await app.start(WORKFLOW, input, tenant="demo")
        console.print(f"  run {handle.id} started", markup=False, highlight=False)
        try:
            async with asyncio.timeout(DEADLINE):
                row, effects = await _watch(app, handle.id, console, handle.tenant)
        except TimeoutError:
            raise AiosysError(
                f"the demo run {handle.id} did not end within {DEADLINE:.0f}s; "
                f"inspect it with: aiosys runs show {handle.id}"
            ) from None
    return row, effects


def show_outcome(console: Console, url: str, row: RunRow, effects: list[EffectRow]) -> None:
    """The run's result (or error) and its effect timeline, as ``runs show`` prints it."""
    secs = (row.finished_at or row.updated_at) - (row.started_at or row.created_at)
    console.print()
    console.print(Text.assemble(("result", "bold"), f" ({row.status} in {secs:.1f}s):"))
    if row.status == SUCCEEDED:
        console.print(JSON(row.result or "null"), soft_wrap=True)
    else:
        console.print(Text(error_message(row.error), style="red"))
    console.print()
    console.print(timeline_table(effects))
    console.print(
        f"\ninspect it again: aiosys runs show {row.id} --store {mask_url(url)}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
