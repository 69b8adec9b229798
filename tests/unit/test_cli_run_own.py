"""``aiosys run`` executes its own run and the children it starts, not the other pending runs
in the store (unless ``--serve-others``), on both stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.unit.clirunner import aiosys, ok

TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIOSYS_STORE", raising=False)
    return store_url


def cli(store: str, *args: str) -> str:
    return ok(aiosys(*args, "--app", "ownruns:app", "--store", store)).stdout


def runs(store: str) -> dict[str, dict[str, Any]]:
    listed = json.loads(cli(store, "runs", "list", "--json", "--limit", "100"))
    return {r["id"]: r for r in listed}


def start_greets(store: str, n: int) -> list[str]:
    return [
        cli(store, "start", "greet", "-i", json.dumps({"name": f"n{i}"})).strip() for i in range(n)
    ]


def test_run_leaves_the_other_pending_runs_alone(store: str) -> None:
    others = start_greets(store, 2)
    assert cli(store, "run", "greet", "-i", '{"name": "mine"}').strip() == "hello mine"
    after = runs(store)
    assert [after[i]["status"] for i in others] == ["pending", "pending"]
    (mine,) = [r for i, r in after.items() if i not in others]
    assert mine["status"] == "succeeded" and mine["result"] == "hello mine"


def test_run_executes_its_children_and_grandchildren_here(store: str) -> None:
    others = start_greets(store, 1)
    out = cli(store, "run", "family", "-i", '{"name": "Ada"}', "--json")
    record = json.loads(out)
    assert record["status"] == "succeeded" and record["result"] == "grand Ada via child"
    after = runs(store)
    assert after[others[0]]["status"] == "pending"
    by_workflow = {r["workflow"]: r["status"] for r in after.values()}
    assert by_workflow == {
        "greet": "pending",
        "family": "succeeded",
        "child": "succeeded",
        "grandchild": "succeeded",
    }


def test_serve_others_executes_the_pending_runs_too(store: str) -> None:
    others = start_greets(store, 3)
    record = json.loads(cli(store, "run", "until_greeted", "--serve-others", "--json"))
    assert record["status"] == "succeeded" and record["result"] >= 1
    after = runs(store)
    assert {after[i]["status"] for i in others} == {"succeeded"}
    assert {after[i]["result"] for i in others} == {"hello n0", "hello n1", "hello n2"}


def test_an_idempotency_key_returns_a_pending_run_that_run_then_executes(store: str) -> None:
    (pending,) = [
        cli(store, "start", "greet", "-i", '{"name": "K"}', "--idempotency-key", "k1").strip()
    ]
    others = start_greets(store, 1)
    result = aiosys(
        "run",
        "greet",
        "-i",
        '{"name": "K"}',
        "--idempotency-key",
        "k1",
        "--app",
        "ownruns:app",
        "--store",
        store,
    )
    assert ok(result).stdout.strip() == "hello K"
    assert f"existing run {pending}" in result.stderr
    after = runs(store)
    assert after[pending]["status"] == "succeeded"
    assert after[others[0]]["status"] == "pending"
