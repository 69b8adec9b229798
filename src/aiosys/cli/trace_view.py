"""``aiosys runs show RUN --trace``: a run's trace as a waterfall, from the store only."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from ..observe.spans import span_tree

BAR = 40  # characters of the timeline column


def waterfall(spans: list[dict[str, Any]]) -> Table:
    """One row per span, children under their parent (indented), with its offset from the
    run's start, its duration and a bar placed on the run's timeline. ``spans``: the run's
    span first (``aiosys.observe.spans.stored_trace``)."""
    run = spans[0]
    t0, t1 = run["start_ns"], max(s["end_ns"] for s in spans)
    total = max(t1 - t0, 1)
    table = Table(title=f"trace {run['trace_id']}", title_justify="left", box=None)
    table.add_column("span", no_wrap=True)
    table.add_column("start", justify="right")
    table.add_column("took", justify="right")
    table.add_column("status")
    table.add_column("timeline", no_wrap=True)
    for span, depth in span_tree(spans):
        start, end = span["start_ns"], span["end_ns"]
        at = round((start - t0) / total * BAR)
        width = max(1, round((end - start) / total * BAR))
        at = min(at, BAR - 1)
        width = min(width, BAR - at)
        style = {"error": "red", "open": "yellow"}.get(span["status"], "green")
        bar = Text(" " * at) + Text("█" * width, style=style) + Text(" " * (BAR - at - width))
        status = Text(span["status"], style=style)
        if span["error"]:
            status += Text(f" {span['error']}"[:60], style="dim")
        label = Text("  " * depth + span["name"])
        events = span.get("events") or []
        if events:
            label += Text(f" ({len(events)} event{'s' if len(events) > 1 else ''})", style="dim")
        table.add_row(label, _ms(start - t0), _ms(end - start), status, bar)
    return table


def _ms(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms:.1f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"
