"""A workflow of five quick steps, for the acceptance test of one audit chain appended by
several worker processes at once (test_audit_workers.py)."""

from __future__ import annotations

import asyncio

from aiosys import App, Context

app = App(audit_checkpoint_records=50)


@app.step()
async def bump(x: int) -> int:
    await asyncio.sleep(0.001)
    return x + 1


@app.workflow()
async def five(ctx: Context, x: int) -> int:
    for _ in range(5):
        x = await bump(x)
    return x
