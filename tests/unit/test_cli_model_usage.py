"""``runs show`` reports which model answered each model effect, its tokens and cost."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from aiosys import App, Context
from aiosys.cli.main import cli
from aiosys.models.providers.local import register_callable, unregister_callable
from aiosys.models.types import ModelRequest


def shout(text: str) -> str:
    return text.upper()


def test_runs_show_sums_model_tokens_and_cost_of_the_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    register_callable("shout", shout)
    app = App(store=url)
    app.models.add_card(
        {
            "id": "shouter",
            "provider": "local",
            "kind": "summarize",
            "options": {"callable": "shout"},
            "pricing": {"per_call": 0.25},
        }
    )

    @app.workflow()
    async def twice(ctx: Context, text: str) -> str:
        a = await ctx.models.call("shouter", ModelRequest(kind="summarize", text=text))
        b = await ctx.models.call("shouter", ModelRequest(kind="summarize", text=text + " again"))
        return f"{a.output} / {b.output}"

    async def go() -> str:
        async with app:
            run = await app.start("twice", {"text": "quiet words"})
            assert await run.result(timeout=30) == "QUIET WORDS / QUIET WORDS AGAIN"
            return run.id

    try:
        run_id = asyncio.run(go())
    finally:
        unregister_callable("shout")
    shown = CliRunner().invoke(cli, ["runs", "show", run_id, "--json", "--store", url])
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.stdout)
    assert detail["model_usage"]["calls"] == 2
    assert detail["model_usage"]["cost"] == 0.5
    assert [e["meta"]["model"] for e in detail["effects"]] == ["shouter", "shouter"]
    table = CliRunner().invoke(cli, ["runs", "show", run_id, "--store", url])
    assert "2 call(s)" in table.stdout and "shouter" in table.stdout
