"""``runs show`` keeps what an operator needs after a failure: the recorded tracebacks of the
failed step and of the run, in the table view and in ``--json``, on both stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.unit.clirunner import aiosys, ok, reported_error

TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli_store(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    monkeypatch.chdir(tmp_path)
    return store_url


def _only_run(store: str, workflow: str) -> dict[str, object]:
    (run,) = json.loads(
        ok(aiosys("runs", "list", "--json", "--workflow", workflow, "--store", store)).stdout
    )
    assert isinstance(run, dict)
    return run


def test_a_failed_step_keeps_its_traceback_in_runs_show(cli_store: str) -> None:
    reported_error(aiosys("run", "dies", "--app", "cliapp:app", "--store", cli_store))
    run = _only_run(cli_store, "dies")

    shown = json.loads(
        ok(aiosys("runs", "show", str(run["id"]), "--json", "--store", cli_store)).stdout
    )
    [effect] = shown["effects"]
    for tb in (effect["error"]["traceback"], shown["error"]["traceback"]):
        assert tb.startswith("Traceback (most recent call last):")
        assert 'raise PermanentError("broken for good")' in tb
        assert "cliapp.py" in tb

    text = ok(aiosys("runs", "show", str(run["id"]), "--store", cli_store)).stdout
    assert "traceback of effect 1 (step broken, attempt 1)" in text
    assert 'raise PermanentError("broken for good")' in text
    # The run's error is the step's, rebuilt: its traceback is printed once.
    assert text.count("Traceback (most recent call last):") == 1


def test_a_workflow_that_raises_keeps_its_traceback_in_runs_show(cli_store: str) -> None:
    stderr = reported_error(
        aiosys("run", "crashes", "-i", '{"n": 7}', "--app", "cliapp:app", "--store", cli_store)
    )
    assert "ValueError: bad n 7" in stderr
    run = _only_run(cli_store, "crashes")

    shown = json.loads(
        ok(aiosys("runs", "show", str(run["id"]), "--json", "--store", cli_store)).stdout
    )
    assert shown["effects"] == []
    assert 'raise ValueError(f"bad n {n}")' in shown["error"]["traceback"]

    text = ok(aiosys("runs", "show", str(run["id"]), "--store", cli_store)).stdout
    assert f"traceback of run {run['id']}" in text
    assert 'raise ValueError(f"bad n {n}")' in text
