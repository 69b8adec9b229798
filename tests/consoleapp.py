"""The app the console's tests show, and a FastAPI application serving its console.

``make_app(store_url)``: workflows that make every kind of row a page shows (a human task
with an SLA, a model call with a cost, a retried step, a dead run with a traceback, a run
waiting for a signal, a model call whose request was redacted); ``server(app)``: a FastAPI
application that opens the app with its worker (the embedded default) and mounts the
console. ``create()`` builds both from ``AIOSYS_STORE`` (``uvicorn --factory
tests.consoleapp:create``, the browser test's server).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from aiosys import App, Context, PermanentError, Retry, TransientError, current_step
from aiosys.models.providers.local import register_callable
from aiosys.models.types import Message
from aiosys.ui import mount_console

EMAIL = "maria.garcia@example.com"
SECRET = "console-test-session-secret-0123456789"


def echo(messages: list[Message]) -> str:
    """A local model that answers with what it was sent."""
    return f"echo: {messages[-1].content}"


register_callable("console-echo", echo)


def make_app(store_url: str, *, redacting: bool = False, **kw: Any) -> App:
    """The app (``redacting``: with an external model card whose requests are always
    redacted, and the workflow ``private`` calling it; loading the detector takes seconds)."""
    app = App(store=store_url, models_dir="", policies_dir="", **kw)
    priced = {"input_per_1k": 0.5, "output_per_1k": 1.0}
    app.models.add_card(
        {
            "id": "echo",
            "provider": "local",
            "owner": "platform team",
            "description": "Answers with its input: the console tests' model.",
            "intended_use": ["tests"],
            "risk_level": "low",
            "options": {"callable": "console-echo"},
            "pricing": priced,
        }
    )

    @app.step(retry=Retry(attempts=3, backoff=0.0, jitter=0.0))
    def extract(doc: str) -> str:
        info = current_step()
        if info is not None and info.attempt == 1:
            raise TransientError("the extractor is busy")
        return doc.upper()

    @app.workflow
    async def review(ctx: Context, doc: str) -> dict[str, Any]:
        text = await extract(doc)
        answer = await ctx.models.call("echo", f"summarize {text}")
        decision = await ctx.human_task(
            "approve-summary", role="reviewer", data={"summary": answer.output}, sla="1h"
        )
        return {"summary": answer.output, "decision": decision.action}

    @app.step
    def broken() -> None:
        raise PermanentError("the ledger refused the entry")

    @app.workflow
    async def dies(ctx: Context) -> None:
        await broken()

    @app.workflow
    async def waits(ctx: Context) -> Any:
        return await ctx.wait_for("go")

    if redacting:
        app.models.add_card(
            {
                "id": "echo-cloud",
                "provider": "local",
                "external": True,
                "redaction": "always",
                "options": {"callable": "console-echo"},
            }
        )

        @app.workflow
        async def private(ctx: Context) -> str:
            answer = await ctx.models.call("echo-cloud", f"write to {EMAIL}")
            return str(answer.output)

    return app


def server(app: App, **console: Any) -> FastAPI:
    """A FastAPI application that runs ``app`` with its worker while it serves, with the
    console at ``/``."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with app:
            yield

    api = FastAPI(lifespan=lifespan)
    mount_console(api, app, secret=SECRET, **console)
    return api


def create() -> FastAPI:
    return server(make_app(os.environ["AIOSYS_STORE"]))
