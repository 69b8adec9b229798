"""Workflows that each make one priced model call under one hard budget, for the acceptance
test of budgets shared by several worker processes (test_budget_workers.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiosys import App, Context
from aiosys.models.links.budget import Budget
from aiosys.models.providers.local import register_callable

LIMIT = 0.05
PER_CALL = 0.004

app = App()


async def model(messages: Any) -> str:
    await asyncio.sleep(0.2)  # a model's latency: calls of the three workers overlap
    return "ok"


register_callable("budget-slow", model)
app.models.add_card(
    {
        "id": "m",
        "provider": "local",
        "options": {"callable": "budget-slow"},
        "pricing": {"per_call": PER_CALL},
    }
)
app.models.budgets.add(Budget("tenant", "default", LIMIT, period="total"))


@app.workflow()
async def spend(ctx: Context) -> float:
    response = await ctx.models.call("m", "hi")
    return response.cost
