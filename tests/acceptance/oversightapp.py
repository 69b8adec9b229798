"""The app of the human-oversight crash test (test_oversight_crash.py), run in real ``aiosys
worker`` processes as ``oversightapp:app``: the shipped policies, whose
``high-risk-needs-approval`` makes a call to the high-risk card ``judge`` wait for a partner's
approval. The model appends ``judge <text> <pid>`` to the file named by ``AIOSYS_CRASH_LOG``
(one write, fsync) before it answers, so the log holds every call it made in any process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from crashapp import block_once

from aiosys import App, Context

POLICIES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def judge(messages: list[Any]) -> str:
    text = messages[-1].content
    fd = os.open(os.environ["AIOSYS_CRASH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"judge {text} {os.getpid()}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return f"judged {text}"


def build(store: str | None = None) -> App:
    """A fresh app (store: the argument, else ``AIOSYS_STORE``)."""
    app = App(store, models_dir="", policies_dir=POLICIES)
    app.models.add_card(
        {
            "id": "judge",
            "provider": "local",
            "options": {"callable": "oversightapp:judge"},
            "risk_level": "high",
        }
    )

    @app.step
    def hold_once() -> int:
        return block_once()

    @app.workflow
    async def assess(ctx: Context, text: str) -> str:
        """The gated call, then a step that blocks in the first process to reach it."""
        reply = await ctx.models.call("judge", text)
        await hold_once()
        return str(reply.output)

    return app


app = build()
