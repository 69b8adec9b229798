"""The gate: an interceptor sees each effect of a run once, when it is first executed,
whatever its kind, and never when a recorded effect is replayed."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from aiosys import App, Context
from aiosys.kernel import EffectCall, Next

pytestmark = pytest.mark.timeout(60)


class Probe:
    """Notes every effect that reaches it: (run, seq, kind)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str]] = []

    async def __call__(self, call: EffectCall, next: Next) -> Any:
        self.seen.append((call.run_id, call.seq, call.kind))
        return await next(call)


async def parked_at(app: App, run_id: str, kind: str) -> None:
    """Wait until the run is parked on a pending effect of ``kind``."""
    async with asyncio.timeout(10):
        while True:
            row = await app.get_run(run_id)
            effects = await app.effects(run_id)
            if row.status == "waiting" and effects and effects[-1].kind == kind:
                assert effects[-1].status == "pending"
                return
            await asyncio.sleep(0.01)


async def test_interceptor_sees_every_kind_of_effect_once_and_no_replay(store_url):
    app = App(store=store_url, lease=1.0)
    probe = Probe()
    app.gate.add("probe", probe, before="retry")
    assert app.gate.names == ["effect_log", "audit", "redact", "probe", "retry"]  # aiosys.App
    executions: list[str] = []

    @app.step
    async def fetch(doc: str) -> str:
        return doc.upper()

    @app.workflow
    async def child(ctx: Context, text: str) -> str:
        return text + await ctx.wait_for("finish")

    @app.workflow
    async def parent(ctx: Context, doc: str) -> dict:
        executions.append(ctx.run_id)
        text = await fetch(doc)  # 1 step
        await ctx.sleep(0.05)  # 2 sleep: parks, checked again when it is due
        approval = await ctx.wait_for("approval")  # 3 signal: parks until it comes
        handle = await ctx.start_child("child", {"text": text})  # 4 child_start
        result = await handle  # 5 child_result: parks until the child ends
        return {"approval": approval, "child": result}

    async with app:
        run = await app.start("parent", {"doc": "a"})
        await parked_at(app, run.id, "signal")
        await app.signal(run.id, "approval", "yes")
        await parked_at(app, run.id, "child_result")
        (child_run,) = await app.list_runs(workflow="child")
        await app.signal(child_run.id, "finish", "!")
        assert await run.result(timeout=10) == {"approval": "yes", "child": "A!"}

    assert len(executions) == 1  # parked executions resume in place: no replay per wake-up
    assert Counter((seq, kind) for run_id, seq, kind in probe.seen if run_id == run.id) == {
        (1, "step"): 1,
        (2, "sleep"): 1,
        (3, "signal"): 1,
        (4, "child_start"): 1,
        (5, "child_result"): 1,
    }
    assert Counter(kind for run_id, _, kind in probe.seen if run_id == child_run.id) == {
        "signal": 1
    }
