"""Helpers of the HTTP API tests: the tenant walks' app (also the Python walk's), its API over
httpx's ASGI transport (the real FastAPI application, in this process), and API keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

import aiosys
from aiosys import Context, PermanentError
from aiosys.api import create_api

SECRET = "s" * 40


def make_app(store_url: str, policies: Path | str = "") -> aiosys.App:
    """The app of the tenant walks (Python and HTTP): runs that wait for a signal, die,
    start a child, ask a human task, or just answer (``hello``, also on the topic
    ``greeting.sent``); Cedar policies from ``policies`` (empty: none)."""
    app = aiosys.App(store_url, models_dir="", preload_models=False, policies_dir=policies)

    @app.workflow(on="greeting.sent")
    async def hello(ctx: Context, name: str) -> str:
        return f"hello {name}"

    @app.workflow
    async def waits(ctx: Context) -> Any:
        return await ctx.wait_for("go")

    @app.step
    def boom() -> None:
        raise PermanentError("boom")

    @app.workflow
    async def dies(ctx: Context) -> None:
        await boom()

    @app.workflow
    async def parent(ctx: Context) -> Any:
        return await ctx.child("waits")

    @app.workflow
    async def asks(ctx: Context) -> Any:
        return (await ctx.human_task("sign-off", role="admin", data={"doc": 1})).action

    @app.workflow
    async def hold(ctx: Context) -> Any:
        return await ctx.wait_for("go")

    return app


@asynccontextmanager
async def serving(app: aiosys.App, *, worker: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """The app open (with its worker) and a client of its API."""
    api = create_api(app)
    if worker:
        async with app:
            async with client_of(api) as client:
                yield client
        return
    await app.open()
    try:
        async with client_of(api) as client:
            yield client
    finally:
        await app.close()


def client_of(api: Any, key: str | None = None) -> httpx.AsyncClient:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(api), base_url="http://aiosys.test", headers=headers
    )


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def new_key(app: aiosys.App, tenant: str, who: str, *roles: str) -> str:
    return (await app.identity.keys.create(tenant, who, roles=roles)).key


async def status_of(client: httpx.AsyncClient, run_id: str, key: str, *statuses: str) -> Any:
    """Poll ``GET /v1/runs/{id}`` (with ``key``; "local": no credential) until the run is
    in one of ``statuses``; its body."""
    headers = {} if key == "local" else auth(key)
    async with asyncio.timeout(20):
        while True:
            body = (await client.get(f"/v1/runs/{run_id}", headers=headers)).json()
            if body.get("status") in statuses:
                return body
            await asyncio.sleep(0.01)


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert ``response`` is an RFC 9457 problem of ``status``; its body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "instance"} <= set(body), body
    assert body["instance"] == response.request.url.path
    return body
