"""``aiosys lineage show|runs|export`` on both stores: the tree back from the result, the
JSON, the runs of a model version, the OpenLineage file; errors as one line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import _wait_status as wait_status
from tests.integration.openlineage_check import check_event
from tests.integration.openlineage_schema import validate_event
from tests.integration.test_lineage import build, sha
from tests.unit.clirunner import aiosys, ok, reported_error
from tests.wire.openai_server import OpenAIWire

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def _here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no aiosys.toml: the commands read the store alone


async def make_runs(store_url: str, server: OpenAIWire) -> tuple[str, Any, str]:
    """An ``intake`` run and an approved ``review`` run; their ids and intake's result."""
    app = build(store_url, server)
    async with app:
        run = await app.start("intake", {"path": "cli.pdf"})
        out = await run.result(timeout=30)
        review = await app.start("review", {"path": "r.pdf"})
        await wait_status(app, review.id, "waiting")
        decision = {"action": "approve", "decided_by": "user:default/pat", "decided_at": 1.5e9}
        await app.signal(review.id, "decide", decision)
        await review.result(timeout=30)
    return run.id, out, review.id


def test_show_runs_and_export_from_the_command_line(
    store_url: str, openai_server: OpenAIWire, tmp_path: Path
) -> None:
    run_id, out, review_id = asyncio.run(make_runs(store_url, openai_server))
    s = ["--store", store_url]

    shown = json.loads(ok(aiosys("lineage", "show", run_id, "--json", *s)).stdout)
    assert shown["input"] == f"sha256:{sha({'path': 'cli.pdf'})}"
    assert shown["result"] == f"sha256:{sha(out)}" and shown["result_from"] == [2, 4]
    model = shown["effects"][1]
    assert (model["model"], model["task"]) == ("wire-gpt@3", "summarize@2")
    assert model["inputs"] == {"input": f"sha256:{sha({'text': 'text of cli.pdf at 200'})}"}
    assert model["policies"][0]["policies"] == ["same-tenant-effects"]
    assert shown["effects"][2]["child"]["workflow"] == "count"

    tree = ok(aiosys("lineage", "show", run_id, *s)).stdout
    assert f"run {run_id} intake@1 succeeded" in tree
    assert f"result sha256:{sha(out)[:12]}" in tree
    assert "#2 model summarize ok · model wire-gpt@3 · task summarize@2" in tree
    assert "← #1" in tree and "← run input" in tree
    assert "policy allow call_model" in tree and "same-tenant-effects" in tree
    assert "count@1 succeeded" in tree  # the child run, under its start

    reviewed = ok(aiosys("lineage", "show", review_id, *s)).stdout
    assert "human approve by user:default/pat" in reviewed

    used = json.loads(ok(aiosys("lineage", "runs", "--model", "wire-gpt@3", "--json", *s)).stdout)
    assert [r["run_id"] for r in used] == [run_id] and used[0]["calls"] == 1
    table = ok(aiosys("lineage", "runs", "--model", "wire-gpt@3", *s)).stdout
    assert run_id in table and "1 run whose model calls wire-gpt@3 answered" in table
    assert (
        json.loads(ok(aiosys("lineage", "runs", "--model", "wire-gpt@9", "--json", *s)).stdout)
        == []
    )

    target = tmp_path / "events.jsonl"
    done = ok(aiosys("lineage", "export", run_id, "--output", str(target), *s))
    lines = target.read_text().splitlines()
    assert f"exported {len(lines)} OpenLineage events" in done.stderr
    for line in lines:
        check_event(json.loads(line))
        validate_event(json.loads(line))  # the spec's JSON Schema, facets included
    assert ok(aiosys("lineage", "export", run_id, *s)).stdout.splitlines() == lines


def test_lineage_errors_are_one_line(tmp_path: Path) -> None:
    s = ["--store", f"sqlite:///{tmp_path}/e.db"]
    assert "no run with id 'nope'" in reported_error(aiosys("lineage", "show", "nope", *s))
    assert "no run with id" in reported_error(aiosys("lineage", "export", "nope", *s))
    error = reported_error(aiosys("lineage", "runs", "--model", "@1", *s), 2)
    assert "--model must be a card id or id@version" in error
    error = reported_error(aiosys("lineage", "runs", "--model", "m", "--since", "soon", *s), 2)
    assert "--since" in error and "soon" in error
