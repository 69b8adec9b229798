"""``aiosys metrics``: the Prometheus metrics of the store, in the text exposition format.

Computed from the store when asked (``aiosys.observe.metrics``), so they count what every
worker sharing the store did; the same text a server's ``/metrics`` serves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .common import AppOption, StoreOption, run_async, store_app, tenant_name, with_opened

if TYPE_CHECKING:
    from ..kernel import App


def metrics(
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            callback=tenant_name,
            help="Only this tenant's series (default: the API key's tenant, else every tenant).",
        ),
    ] = None,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Print the store's Prometheus metrics in the text exposition format.

    Runs, effects, queues, workers, model calls, tokens, cost and budgets, computed from the
    store now (every worker's work); with an API key, only its tenant's series."""

    async def body(the_app: App) -> str:
        return await scrape(the_app, tenant)

    typer.echo(run_async(lambda: with_opened(store_app(app, store), body)), nl=False)


async def scrape(app: App, tenant: str | None) -> str:
    """``App.metrics`` of the public App; for a bare kernel App (no model plane), the same
    series without budgets or breakers."""
    method = getattr(app, "metrics", None)
    if method is not None:
        text: str = await method(tenant=tenant)
        return text
    from ..observe.metrics import collect, exposition

    scope = await app.authorize("read_usage", tenant=tenant)
    return exposition(await collect(app.store, tenant=scope))
