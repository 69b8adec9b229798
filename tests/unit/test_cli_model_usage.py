"""``runs show`` reports which model answered each model effect, its tokens and cost;
``models usage`` sums the calls, tokens and cost of a tenant per model or per workflow."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pydantic import BaseModel
from tests.unit.clirunner import aiosys, ok, reported_error
from typer.testing import CliRunner

from aiosys import App, Context
from aiosys.cli.main import cli
from aiosys.models.contracts import RoutingPlan
from aiosys.models.providers.local import register_callable, unregister_callable
from aiosys.models.types import ModelRequest


def shout(text: str) -> str:
    return text.upper()


def metered(url: str) -> str:
    """A store holding one run of ``twice`` (two priced model calls in a workflow), one
    call outside any workflow, and one of tenant ``acme``; the run's id."""
    register_callable("shout", shout)
    app = App(store=url)
    card = {"provider": "local", "kind": "summarize", "options": {"callable": "shout"}}
    app.models.add_card({"id": "shouter", **card, "pricing": {"per_call": 0.25}})
    app.models.add_card({"id": "free", **card})

    @app.workflow()
    async def twice(ctx: Context, text: str) -> str:
        a = await ctx.models.call("shouter", ModelRequest(kind="summarize", text=text))
        b = await ctx.models.call("shouter", ModelRequest(kind="summarize", text=text + " again"))
        return f"{a.output} / {b.output}"

    async def go() -> str:
        async with app:
            run = await app.start("twice", {"text": "quiet words"})
            assert await run.result(timeout=30) == "QUIET WORDS / QUIET WORDS AGAIN"
            await app.models.call("free", ModelRequest(kind="summarize", text="outside"))
            await app.models.call(
                "shouter", ModelRequest(kind="summarize", text="other"), tenant="acme"
            )
            return run.id

    try:
        return asyncio.run(go())
    finally:
        unregister_callable("shout")


def test_runs_show_sums_model_tokens_and_cost_of_the_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    run_id = metered(url)
    shown = CliRunner().invoke(cli, ["runs", "show", run_id, "--json", "--store", url])
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.stdout)
    assert detail["model_usage"]["calls"] == 2
    assert detail["model_usage"]["cost"] == 0.5
    assert [e["meta"]["model"] for e in detail["effects"]] == ["shouter", "shouter"]
    table = CliRunner().invoke(cli, ["runs", "show", run_id, "--store", url])
    assert "2 call(s)" in table.stdout and "shouter" in table.stdout


def test_models_usage_sums_per_model_and_per_workflow_of_one_tenant(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    metered(url)

    rows = json.loads(ok(aiosys("models", "usage", "--json", "--store", url)).stdout)
    by_model = {r["model"]: (r["calls"], r["ok"], r["cost"]) for r in rows}
    assert by_model == {"shouter": (2, 2, 0.5), "free": (1, 1, 0.0)}
    rows = json.loads(
        ok(aiosys("models", "usage", "--by", "workflow", "--json", "--store", url)).stdout
    )
    assert [(r["workflow"], r["calls"], r["cost"]) for r in rows] == [
        ("twice", 2, 0.5),
        (None, 1, 0.0),
    ]
    acme = ok(aiosys("models", "usage", "--tenant", "acme", "--since", "1h", "--store", url))
    assert "model usage of tenant 'acme'" in acme.stdout
    assert "shouter" in acme.stdout and "0.250000" in acme.stdout
    later = aiosys("models", "usage", "--since", "2999-01-01", "--json", "--store", url)
    assert json.loads(ok(later).stdout) == []

    stderr = reported_error(aiosys("models", "usage", "--since", "last week"), code=2)
    assert "--since 'last week' is neither a duration" in stderr
    stderr = reported_error(aiosys("models", "usage", "--by", "run"), code=2)
    assert "--by must be 'model' or 'workflow', not 'run'" in stderr


class Text(BaseModel):
    text: str


def test_models_shadows_lists_what_the_shadow_answered_beside_the_caller(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shadows.db'}"
    register_callable("shout", shout)
    register_callable("echo", lambda text: text)
    app = App(store=url)
    card = {"provider": "local", "kind": "summarize"}
    app.models.add_card({"id": "shouter", **card, "options": {"callable": "shout"}})
    app.models.add_card({"id": "echoer", **card, "options": {"callable": "echo"}})
    app.models.task(
        "loud",
        input=Text,
        output=Text,
        build=lambda t: ModelRequest(kind="summarize", text=t.text),
        parse=lambda r: {"text": r.output},
        plan=RoutingPlan(["shouter"], shadow="echoer"),
    )

    async def go() -> None:
        async with app:
            assert (await app.models.run("loud", {"text": "hi"})).text == "HI"
            assert (await app.models.run("loud", {"text": "OK"})).text == "OK"
            await app.models.router.drain()

    try:
        asyncio.run(go())
    finally:
        unregister_callable("shout")
        unregister_callable("echo")
    rows = json.loads(ok(aiosys("models", "shadows", "loud", "--json", "--store", url)).stdout)
    assert [(r["output"], r["primary_output"], r["same"]) for r in rows] == [
        ({"text": "OK"}, {"text": "OK"}, True),
        ({"text": "hi"}, {"text": "HI"}, False),
    ]
    assert {(r["primary_model"], r["shadow_model"]) for r in rows} == {("shouter@1", "echoer@1")}
    table = ok(aiosys("models", "shadows", "--store", url)).stdout
    assert "1 of 2 the same" in table and "echoer@1" in table
    assert (
        json.loads(ok(aiosys("models", "shadows", "quiet", "--json", "--store", url)).stdout) == []
    )
