"""A workflow with a step that fails transiently once for odd inputs, a priced model call, and
a permanent failure for multiples of 5, for the acceptance test of ``aiosys metrics`` against
the runs two worker processes executed (test_metrics_workers.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosys import App, Context, PermanentError, Retry, TransientError, current_step
from aiosys.models.links.budget import Budget
from aiosys.models.providers.local import register_callable

PER_CALL = 0.01
LIMIT = 10.0

app = App()
log = logging.getLogger("metricsapp")


async def model(messages: Any) -> str:
    await asyncio.sleep(0.2)  # a model's latency: one worker alone (4 at a time) takes 2 s
    return "ok"


register_callable("metrics-echo", model)
app.models.add_card(
    {
        "id": "m",
        "provider": "local",
        "options": {"callable": "metrics-echo"},
        "pricing": {"per_call": PER_CALL},
    }
)
app.models.budgets.add(Budget("tenant", "default", LIMIT, period="total"))


@app.step(retry=Retry(attempts=3, backoff=0.01))
async def flaky(x: int) -> int:
    step = current_step()
    assert step is not None
    log.info("flaky %d, attempt %d", x, step.attempt)  # a line the worker stamps with run/seq
    if x % 2 and step.attempt == 1:
        raise TransientError(f"first attempt of {x} fails")
    return x


@app.step()
async def refuse(x: int) -> int:
    raise PermanentError(f"{x} is a multiple of 5")


@app.workflow()
async def mix(ctx: Context, x: int) -> int:
    await flaky(x)
    await ctx.models.call("m", "hi")
    if x % 5 == 0:
        await refuse(x)
    return x
