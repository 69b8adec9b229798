"""The app the crash and restart acceptance tests run in real ``aiosys worker`` processes.

A worker imports it as ``crashapp:app`` (its store comes from ``--store``); a test builds its
own copy bound to the same store with ``build(url)`` to start runs, signal them and read them.

Every ``chain`` step appends ``run_id seq pid`` to the file named by ``AIOSYS_CRASH_LOG``
(``O_APPEND``, one write, fsync) *before* it returns, so the log holds every execution of a
step, including ones whose outcome a SIGKILL kept from being recorded. The chain ends with
one priced model call (``tally``, a local model), whose usage row must commit with its
effect's record: exactly one per run, however many kills.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from aiosys import App, Context, current_step

CHAIN_LENGTH = 20
SLEEP_SECONDS = 3.0


def _log_effect() -> None:
    step = current_step()
    assert step is not None, "a chain step runs inside a workflow"
    line = f"{step.run_id} {step.seq} {os.getpid()}\n".encode()
    fd = os.open(os.environ["AIOSYS_CRASH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write of a short line: appended atomically
        os.fsync(fd)
    finally:
        os.close(fd)


def held_marker() -> Path:
    """The file ``block_once`` writes when it starts blocking (beside the crash log)."""
    return held_marker_of(Path(os.environ["AIOSYS_CRASH_LOG"]))


def held_marker_of(crash_log: Path) -> Path:
    """``held_marker`` of the crash log ``crash_log`` (a test's own view of it)."""
    return crash_log.with_suffix(".held")


def block_once() -> int:
    """Blocks in the first process that calls it, until that process is killed (the marker
    file beside the crash log says it got there); returns at once elsewhere."""
    marker = held_marker()
    if marker.exists():
        return os.getpid()
    marker.write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)


def tally(messages: list[Any]) -> str:
    """The chain's model: a local callable (slow enough for kills to land mid-call)."""
    time.sleep(0.002)
    return f"tallied {messages[-1].content}"


def build(store: str | None = None) -> App:
    """A fresh app with the test workflows (store: the argument, else ``AIOSYS_STORE``)."""
    app = App(store)
    app.models.add_card(
        {
            "id": "tally",
            "provider": "local",
            "options": {"callable": "crashapp:tally"},
            "pricing": {"per_call": 0.001},
        }
    )

    @app.step
    async def bump(x: int) -> int:
        await asyncio.sleep(0.002)  # long enough for kills to land mid-step
        _log_effect()
        return x + 1

    # Chaos kills a worker every ~0.5 s: a run is often in flight at many kills, which is
    # what this test is for, so the recovery cap (for a step that kills its own worker) is off.
    @app.workflow(max_recoveries=None)
    async def chain(ctx: Context, n: int = CHAIN_LENGTH) -> int:
        x = 0
        for _ in range(n):
            x = await bump(x)
        reply = await ctx.models.call("tally", f"{x} steps")
        assert reply.output == f"tallied {x} steps"
        return x

    @app.step
    def hold_once() -> int:
        return block_once()

    @app.workflow
    async def handover(ctx: Context) -> int:
        x = await bump(0)
        await hold_once()
        return await bump(x)

    @app.workflow
    async def traced_handover(ctx: Context) -> int:
        x = await bump(0)
        await ctx.sleep(0.05)  # a timer: its span ends by Gate.wait_hooks
        await hold_once()
        return await bump(x)

    @app.workflow
    async def reviewed(ctx: Context) -> dict[str, Any]:
        """A human task, then a step that blocks in the first process to reach it."""
        decision = await ctx.human_task("review", role="paralegal", data={"doc": 1})
        await hold_once()
        return {"action": decision.action, "by": decision.decided_by}

    @app.step
    def wall_clock() -> float:
        return time.time()

    @app.workflow
    async def nap(ctx: Context, seconds: float = SLEEP_SECONDS) -> dict[str, float]:
        before = await wall_clock()
        await ctx.sleep(seconds)
        after = await wall_clock()
        return {"slept_at": before, "woke_at": after}

    @app.workflow
    async def gate(ctx: Context) -> Any:
        return await ctx.wait_for("go")

    return app


app = build()
