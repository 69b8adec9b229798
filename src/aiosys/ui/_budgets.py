"""Budgets and their use: the budgets in force for one tenant (its own, and those of its
workflows: ``"tenant/workflow"`` keys and bare workflow keys, each tenant's spend counted
apart), what was spent in each one's current period (``app.models.spent``), and the
tenant's model use by model since the start of the month (``app.models.usage``).

A visitor sees its own tenant's; the local principal picks any (``?tenant=``, default
``default``); naming another tenant than one's own is refused (403) by the App."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..kernel import current_principal
from ..models.links.budget import Budget, period_start
from ._charts import meter
from ._console import Console


def applies(budget: Budget, tenant: str) -> bool:
    """Whether ``budget`` caps ``tenant``'s spend (its own, or one of its workflows')."""
    if budget.scope == "tenant":
        return budget.key == tenant
    owner, _, _ = budget.key.rpartition("/")
    return owner in ("", tenant)


def router(console: Console) -> APIRouter:
    r = APIRouter(route_class=console.route_class())
    app = console.app

    @r.get("/budgets", name="budgets")
    async def budgets(request: Request) -> Response:
        principal = current_principal()
        asked = request.query_params.get("tenant") or None
        tenant = asked or principal.tenant
        now = app.store.clock()
        rows: list[dict[str, Any]] = []
        for b in app.models.budgets:
            if not applies(b, tenant):
                continue
            workflow = None if b.scope == "tenant" else b.key.rpartition("/")[2]
            used = await app.models.spent(workflow=workflow, since=b.since(now), tenant=tenant)
            fraction = used / b.limit if b.limit else None
            rows.append(
                {
                    "b": b,
                    "workflow": workflow,
                    "used": used,
                    "left": max(b.limit - used, 0.0),
                    "fraction": fraction,
                    "meter": meter(fraction, f"{b.label}: {used:.6f} of {b.limit}"),
                }
            )
        usage = await app.models.usage(since=period_start("month", now), tenant=tenant)
        return console.page(
            request,
            "budgets.html",
            title="Budgets",
            tenant=tenant,
            rows=rows,
            usage=usage,
            pick=principal.local,
        )

    return r


__all__ = ["applies", "router"]
