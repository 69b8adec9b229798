"""Where a run is, in one line: what ``aiosys run`` shows in a spinner while it waits.

The line is read from the store (the run and its latest effect, every ``POLL`` seconds), so
it says what is recorded: a wait (a timer, a signal, a child run), a step between retries,
or the last effect done while the next one runs. A child run being waited for is followed
down (a few levels), so a parent waiting on its child shows what the child waits for.

The spinner is drawn only when stderr is a terminal: in a pipe, a CI log or a test nothing
is printed.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from rich.console import Console

from ..kernel.interceptors.effect_log import RETRY
from ..store import Store
from ..store.base import TERMINAL, EffectRow, RunRow

POLL = 0.5  # seconds between two looks at the store
DEPTH = 3  # child runs followed below the run


def _clock(t: Any) -> str:
    """A time of day (local), or '' for none."""
    if not isinstance(t, int | float):
        return ""
    return datetime.fromtimestamp(t).strftime("%H:%M:%S")


def effect_line(effect: EffectRow) -> str:
    """What a run is doing, from its latest effect: a pending one is a wait (``sleeping
    until 14:02:11``, ``waiting for signal 'review'``, ``waiting for child run <id>
    (<workflow>)``, ``waiting for human task 'review' (<task id>), due 14:02:11``), an
    effect waiting for a person's approval (``model summarize waiting for approval by a
    partner (<task id>)``) or a step between attempts (``step ocr (attempt 2 at
    14:02:11)``); one that ended is the last thing done (``running; last: step ocr``)."""
    what = f"{effect.kind} {effect.name}"
    if effect.status != "pending":
        return f"running; last: {what}" + (" (failed)" if effect.status == "error" else "")
    try:
        state = json.loads(effect.output or "{}")
    except ValueError:
        state = {}
    if not isinstance(state, dict):
        state = {}
    if RETRY in state:
        at = _clock(state.get("retry_at"))
        return f"{what} (attempt {state[RETRY]}" + (f" at {at})" if at else ")")
    approval = state.get("approval")
    if isinstance(approval, dict):  # aiosys.humans.approval: parked on a human task
        task = str(approval.get("task_id", "?"))[:8]
        return f"{what} waiting for approval by a {approval.get('role', '?')} ({task})"
    deadline = _clock(state.get("deadline"))
    if effect.kind == "sleep":
        return f"sleeping until {deadline}" if deadline else "sleeping"
    if effect.kind == "signal":
        return f"waiting for signal {effect.name!r}" + (f" until {deadline}" if deadline else "")
    if effect.kind == "human_task":
        task, due = str(state.get("task_id", "?"))[:8], _clock(state.get("due_at"))
        return f"waiting for human task {effect.name!r} ({task})" + (f", due {due}" if due else "")
    if effect.kind == "child_result":
        return f"waiting for child run {str(state.get('child_id', '?'))[:8]} ({effect.name})"
    return f"waiting on {what}"


def status_line(run: RunRow, effects: list[EffectRow | None]) -> str:
    """The spinner's line for ``run``: its workflow, then ``effect_line`` of its latest
    effect and of the latest effect of each child run it waits for (``effects``, outermost
    first; None for a run with no effect yet)."""
    head = f"{run.workflow} {run.id[:8]}"
    if run.status in TERMINAL:
        return f"{head}: {run.status}"
    if run.status == "pending":
        return f"{head}: pending (waiting for a worker slot)"
    parts = [("started" if e is None else effect_line(e)) for e in effects] or ["started"]
    return f"{head}: " + ": ".join(parts)


async def _latest(store: Store, run_id: str) -> EffectRow | None:
    effects = await store.list_effects(run_id)
    return effects[-1] if effects else None


async def look(store: Store, run_id: str) -> str | None:
    """The status line of ``run_id`` as the store has it now; None if there is no such run."""
    run = await store.get_run(run_id)
    if run is None:
        return None
    chain: list[EffectRow | None] = [await _latest(store, run_id)]
    for _ in range(DEPTH):
        last = chain[-1]
        if last is None or last.kind != "child_result" or last.status != "pending":
            break
        child = json.loads(last.output or "{}").get("child_id")
        if not isinstance(child, str):
            break
        chain.append(await _latest(store, child))
    return status_line(run, chain)


async def show_status(store: Store, run_id: str, console: Console, poll: float = POLL) -> None:
    """Draw a spinner on ``console`` naming where ``run_id`` is, until cancelled; return at
    once, drawing nothing, when ``console`` is not a terminal. A failed look (the store
    busy) keeps the last line."""
    if not console.is_terminal:
        return
    with console.status("starting", spinner="dots") as spinner:
        while True:
            try:
                line = await look(store, run_id)
            except Exception:  # the spinner never fails the run it shows
                line = None
            if line is not None:
                spinner.update(line)
            await asyncio.sleep(poll)


__all__ = ["effect_line", "look", "show_status", "status_line"]
