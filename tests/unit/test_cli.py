"""The ``aiosys`` command against a real SQLite file and the small app in tests/cliapp.py."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.unit.clirunner import aiosys, ok, reported_error

from aiosys import App
from aiosys.cli.demo import EDIT_COMMENT, EDITED_SUMMARY

TESTS_DIR = Path(__file__).resolve().parents[1]
RUN_KEYS = {
    "id",
    "workflow",
    "version",
    "status",
    "tenant",
    "result",
    "error",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    monkeypatch.chdir(tmp_path)  # nothing may land in the repository's .aiosys/
    return f"sqlite:///{tmp_path / 'cli.db'}"


def runs_json(store: str, *args: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = json.loads(
        ok(aiosys("runs", "list", "--json", "--store", store, *args)).stdout
    )
    return runs


def test_run_executes_the_workflow_and_prints_its_result(store: str) -> None:
    result = ok(
        aiosys(
            "run", "greet", "--input", '{"name": "Ada"}', "--app", "cliapp:app", "--store", store
        )
    )
    assert result.stdout.strip() == "hello Ada"

    result = ok(
        aiosys(
            "run", "double", "-i", '{"x": 21}', "--json", "--app", "cliapp:app", "--store", store
        )
    )
    record = json.loads(result.stdout)
    assert set(record) == RUN_KEYS
    assert (record["status"], record["result"]) == ("succeeded", {"doubled": 42})
    assert {r["status"] for r in runs_json(store)} == {"succeeded"}


def test_start_records_a_pending_run_with_the_documented_keys(store: str) -> None:
    run_id = ok(
        aiosys("start", "greet", "-i", '{"name": "Bo"}', "--app", "cliapp:app", "--store", store)
    ).stdout.strip()

    runs = runs_json(store)
    assert [r["id"] for r in runs] == [run_id]
    assert set(runs[0]) == RUN_KEYS
    assert runs[0]["workflow"] == "greet"
    assert runs[0]["status"] == "pending"
    assert runs[0]["started_at"] is None and runs[0]["result"] is None
    assert runs_json(store, "--status", "succeeded") == []


def test_start_with_a_used_idempotency_key_returns_the_same_run(store: str) -> None:
    args = ("start", "greet", "-i", '{"name": "Bo"}', "--idempotency-key", "k1", "--tenant", "acme")
    first = json.loads(ok(aiosys(*args, "--json", "--app", "cliapp:app", "--store", store)).stdout)
    again = json.loads(ok(aiosys(*args, "--json", "--app", "cliapp:app", "--store", store)).stdout)
    assert (first["created"], again["created"]) == (True, False)
    assert again["id"] == first["id"] and again["tenant"] == "acme"
    assert len(runs_json(store, "--tenant", "acme")) == 1


def test_plain_start_and_run_say_when_a_key_returned_an_existing_run(store: str) -> None:
    where = ("--idempotency-key", "k2", "--app", "cliapp:app", "--store", store)
    start = ("start", "double", "-i", '{"x": 2}', *where)
    run_id = ok(aiosys(*start)).stdout.strip()
    again = ok(aiosys(*start)).stdout
    assert again.startswith(run_id) and "existing run" in again and "'k2'" in again
    ran = ok(aiosys("run", "double", "-i", '{"x": 2}', *where))
    assert f"existing run {run_id}" in ran.output
    conflict = aiosys("start", "double", "-i", '{"x": 3}', *where)
    assert conflict.exit_code != 0 and f"already started run {run_id}" in conflict.output


def test_runs_show_lists_the_effects_with_their_attempts(store: str) -> None:
    ok(aiosys("run", "double", "-i", '{"x": 2}', "--app", "cliapp:app", "--store", store))
    (run,) = runs_json(store, "--workflow", "double")

    show = ("runs", "show", run["id"], "--json", "--store", store)
    shown = json.loads(ok(aiosys(*show)).stdout)
    assert shown["status"] == "succeeded" and shown["result"] == {"doubled": 4}
    assert shown["input"] == {"x": 2}
    [effect] = shown["effects"]
    assert (effect["seq"], effect["kind"], effect["name"]) == (1, "step", "flaky_double")
    assert (effect["status"], effect["attempt"], effect["output"]) == ("ok", 2, 4)
    assert effect["duration_ms"] >= 0

    table = ok(aiosys("runs", "show", run["id"], "--store", store)).stdout
    assert "effect timeline" in table and "flaky_double" in table and run["id"] in table


def test_cancel_ends_a_pending_run_as_cancelled(store: str) -> None:
    run_id = ok(aiosys("start", "waits", "--app", "cliapp:app", "--store", store)).stdout.strip()

    assert (
        "cancelled"
        in ok(
            aiosys("runs", "cancel", run_id, "--reason", "no longer needed", "--store", store)
        ).stdout
    )
    (run,) = runs_json(store)
    assert run["status"] == "cancelled"
    assert run["error"]["message"] == "no longer needed"
    assert "has ended" in reported_error(aiosys("runs", "cancel", run_id, "--store", store))


def test_a_dead_run_reports_its_error_and_resumes(store: str) -> None:
    stderr = reported_error(aiosys("run", "dies", "--app", "cliapp:app", "--store", store))
    assert "ended dead" in stderr and "broken for good" in stderr

    (run,) = runs_json(store, "--status", "dead")
    resumed = json.loads(ok(aiosys("runs", "resume", run["id"], "--json", "--store", store)).stdout)
    assert resumed["status"] == "pending"


def test_signal_sent_from_the_cli_reaches_the_run(store: str) -> None:
    run_id = ok(aiosys("start", "waits", "--app", "cliapp:app", "--store", store)).stdout.strip()
    ok(aiosys("runs", "signal", run_id, "go", "--payload", '{"n": 1}', "--store", store))

    from cliapp import waits  # the workflow function, registered on a fresh app here

    async def execute() -> object:
        app = App(store=store)
        app.workflow(waits)
        async with app:  # a worker in this process takes the pending run
            return await app.handle(run_id).result(timeout=30)

    assert asyncio.run(execute()) == {"n": 1}
    assert "no run with id" in reported_error(
        aiosys("runs", "signal", "nope", "go", "--store", store)
    )


def test_unknown_workflow_is_one_line_on_stderr_and_exit_1(store: str) -> None:
    stderr = reported_error(aiosys("run", "nope", "--app", "cliapp:app", "--store", store))
    assert "no workflow named 'nope'" in stderr and "greet" in stderr
    reported_error(aiosys("start", "nope", "--app", "cliapp:app", "--store", store))


def test_unknown_workflow_through_the_real_command_prints_no_traceback(store: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aiosys.cli",
            "run",
            "nope",
            "--app",
            "cliapp:app",
            "--store",
            store,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: no workflow named 'nope'")
    assert "Traceback" not in proc.stderr


def test_invalid_input_names_the_field(store: str) -> None:
    stderr = reported_error(
        aiosys("run", "double", "-i", '{"x": "many"}', "--app", "cliapp:app", "--store", store)
    )
    assert "invalid input for workflow 'double'" in stderr and "x:" in stderr
    stderr = reported_error(
        aiosys("start", "greet", "-i", "{}", "--app", "cliapp:app", "--store", store)
    )
    assert "name: Field required" in stderr
    assert runs_json(store) == []


def test_input_that_is_not_json_exits_2(store: str) -> None:
    stderr = reported_error(
        aiosys("run", "greet", "-i", "{name: Ada}", "--app", "cliapp:app", "--store", store), code=2
    )
    assert "--input is not valid JSON" in stderr
    assert "--payload" in reported_error(
        aiosys("runs", "signal", "x", "go", "--payload", "{", "--store", store), 2
    )


def test_missing_run_and_missing_app_are_reported(store: str) -> None:
    assert "no run with id 'nope'" in reported_error(
        aiosys("runs", "show", "nope", "--store", store)
    )
    assert "no app given" in reported_error(aiosys("run", "greet", "--store", store))
    assert "cannot import" in reported_error(
        aiosys("run", "greet", "--app", "no_such_module:app", "--store", store)
    )


def test_init_writes_a_project_that_runs(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIOSYS_STORE", raising=False)
    monkeypatch.delitem(sys.modules, "workflows", raising=False)
    assert "wrote" in ok(aiosys("init")).stdout
    assert {"aiosys.toml", "workflows.py"} <= {p.name for p in tmp_path.iterdir()}
    assert "kept" in ok(aiosys("init")).stdout

    result = ok(aiosys("run", "greet", "-i", '{"name": "Ada"}', "--json"))
    assert json.loads(result.stdout)["result"] == {"greeting": "HELLO, ADA"}
    assert (tmp_path / ".aiosys" / "aiosys.db").is_file()
    sys.modules.pop("workflows", None)


def test_demo_completes_and_prints_its_timeline(store: str) -> None:
    result = ok(aiosys("demo", "--store", store))
    out = result.stdout
    assert "effect timeline" in out
    for name in ("extract", "classify", "summarize", "review", "file_document", "sleep", "bill"):
        assert name in out
    assert "succeeded" in out and "CLA-HX-20931" in out
    # The paralegal's review, decided by the demo from outside the runs: an edit the form
    # refused, then the edit of the letter's summary; the e-mails' approved.
    assert "does not fit its form Review: summary" in out
    assert "human task 'review': edit by pat (paralegal)" in out  # as the run resumed
    assert "pat: edit" in out  # its row in the timeline
    assert "human edit by pat as paralegal" in out  # in the lineage tree
    assert "reviews approved without an edit: 67% of 3" in out

    runs = runs_json(store, "--workflow", "document_intake")
    assert [r["status"] for r in runs] == ["succeeded"] * 3
    (letter,) = [r for r in runs if r["result"]["policy"] == "HX-20931"]
    show = ("runs", "show", letter["id"], "--tenant", "demo", "--json", "--store", store)
    shown = json.loads(ok(aiosys(*show)).stdout)
    kinds = [(e["kind"], e["name"], e["attempt"], e["status"]) for e in shown["effects"]]
    # With Tesseract (always under CI) the letter arrives as a scan and OCR reads it first.
    scanned = shutil.which("tesseract") is not None
    ocr = [("model", "read_scan", 1, "ok")] if scanned else []
    assert kinds == [
        *ocr,
        ("step", "extract", 1, "ok"),
        ("step", "classify", 2, "ok"),
        ("model", "summarize", 1, "ok"),
        ("human_task", "review", 1, "ok"),
        ("child_start", "file_document", 1, "ok"),
        ("child_result", "file_document", 1, "ok"),
        ("sleep", "sleep", 1, "ok"),
        ("step", "bill", 1, "ok"),
    ]
    done = shown["result"]
    assert done["review"] == {"action": "edit", "by": "pat", "comment": EDIT_COMMENT}
    assert done["summary"] == EDITED_SUMMARY and "EUR 4,850" in done["summary"]
    assert done["policy"] == "HX-20931" and done["amount"] == 4850.0
    assert (done["invoice"]["matter"], done["invoice"]["total"]) == ("CLA-HX-20931", 170.0)
    for other in (r for r in runs if r is not letter):
        assert other["result"]["review"]["action"] == "approve"
        assert other["result"]["invoice"]["total"] > 0
    assert runs_json(store, "--workflow", "file_document")[0]["status"] == "succeeded"
    # The summary came from the offline summarizer: no LLM is configured, so the plan's
    # first candidate was passed over, and the letter (confidential) left no premises.
    summarize = next(e for e in shown["effects"] if e["name"] == "summarize")
    assert summarize["meta"]["model"] == "summarizer-extractive"
    assert summarize["meta"]["skipped"] == {"demo-llm@1": "excluded by its condition"}

    tasks = json.loads(
        ok(aiosys("tasks", "list", "--status", "completed", "--json", "--store", store)).stdout
    )
    assert sorted(t["decision"]["action"] for t in tasks) == ["approve", "approve", "edit"]
    assert {(t["decided_by"], t["role"], t["tenant"]) for t in tasks} == {
        ("pat", "paralegal", "demo")
    }

    # The lineage of the letter's run: the scan by the SHA-256 of its bytes (as the demo
    # printed it when the scan arrived), the models with their versions, the reviewer.
    lineage = json.loads(
        ok(aiosys("lineage", "show", letter["id"], "--json", "--store", store)).stdout
    )
    by_name = {e["name"]: e for e in lineage["effects"]}
    if scanned:
        found = re.search(r"its SHA-256 \(sha256sum\): ([0-9a-f]{64})", out)
        assert found is not None
        digest = found.group(1)
        assert by_name["read_scan"]["model"] == "ocr-tesseract@5"
        assert by_name["read_scan"]["document"] == f"sha256:{digest}"
        assert f"document sha256:{digest[:12]}" in out
    assert by_name["summarize"]["model"] == "summarizer-extractive@1"
    human = by_name["review"]["human"]
    assert (human["action"], human["decided_by"], human["role"]) == ("edit", "pat", "paralegal")
    assert human["comment"] == EDIT_COMMENT

    stats = ("stats", "--workflow", "document_intake", "--json", "--store", store)
    (wf,) = json.loads(ok(aiosys(*stats)).stdout)["workflows"]
    assert (wf["human_reviews"], wf["without_human_edit"]) == (3, pytest.approx(2 / 3))


def test_a_file_that_is_not_a_database_is_reported_in_one_line(tmp_path) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_text("these are my notes, not a database\n")
    for command in (["runs", "list"], ["runs", "show", "some-id"]):
        message = reported_error(aiosys(*command, "--store", f"sqlite:///{garbage}"))
        assert f"{garbage} is not an aiosys SQLite store" in message
    assert garbage.read_text() == "these are my notes, not a database\n"  # left as it was


def test_worker_refuses_a_queue_the_app_does_not_declare_and_a_concurrency_below_one(
    store: str,
) -> None:
    message = reported_error(
        aiosys("worker", "--app", "cliapp:app", "-q", "nosuch", "--store", store)
    )
    assert "queue 'nosuch' is not declared by the app" in message
    result = aiosys("worker", "--app", "cliapp:app", "--concurrency", "0", "--store", store)
    assert result.exit_code == 2 and "concurrency" in result.output


def test_an_app_module_that_fails_to_import_is_reported_in_one_line(
    tmp_path, monkeypatch, store: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken_syntax.py").write_text("def f(:\n    pass\n")
    (tmp_path / "broken_raise.py").write_text("raise RuntimeError('no config found')\n")
    (tmp_path / "no_app.py").write_text("x = 1\n")
    message = reported_error(aiosys("run", "x", "--app", "broken_syntax:app", "--store", store))
    assert "broken_syntax.py:1" in message
    message = reported_error(aiosys("run", "x", "--app", "broken_raise:app", "--store", store))
    assert "it raised RuntimeError: no config found" in message
    message = reported_error(aiosys("run", "x", "--app", "no_app:nosuch", "--store", store))
    assert "module 'no_app' has no attribute 'nosuch'" in message


def test_a_tenant_named_empty_is_a_usage_error_on_every_command(store: str) -> None:
    # `--tenant "$TENANT"` with the variable unset listed nothing (`runs list` read the store
    # alone, as tenant ""), exit 0: a silent nothing. Every --tenant is checked as App does.
    import typer.main

    from aiosys.cli.common import tenant_name
    from aiosys.cli.main import cli

    def commands(group: Any, path: tuple[str, ...] = ()) -> Any:
        for name, command in getattr(group, "commands", {}).items():
            yield from commands(command, (*path, name))
        if not getattr(group, "commands", None):
            yield path, group

    checked = []
    for path, command in commands(typer.main.get_command(cli)):
        for param in command.params:
            if "--tenant" in getattr(param, "opts", ()) and path != ("keys", "create"):
                assert param.callback is not None, path  # keys create: a usage error itself
                checked.append(path)
    assert ("runs", "list") in checked and ("audit", "export") in checked
    assert len(checked) >= 12, checked
    with pytest.raises(typer.BadParameter, match="tenant is empty"):
        tenant_name("")
    for args in (
        ("runs", "list"),
        ("runs", "show", "r-1"),
        ("tasks", "list"),
        ("stats",),
        ("audit", "export"),
        ("keys", "list"),
        ("runs", "prune", "--before", "1d"),
    ):
        for tenant in ("", "a\x00"):
            message = reported_error(aiosys(*args, "--tenant", tenant), 2)
            assert "--tenant" in message and "tenant " in message, (args, message)


def test_an_empty_filter_is_a_usage_error_not_an_empty_listing(store: str) -> None:
    # `--workflow "$WF"` with the variable unset listed nothing, exit 0.
    for args, option in (
        (("runs", "list"), "--workflow"),
        (("runs", "list", "--stranded"), "--workflow"),
        (("stats",), "--workflow"),
        (("stats",), "--model"),
        (("tasks", "list"), "--run"),
    ):
        message = reported_error(aiosys(*args, option, ""), 2)
        assert option in message and "it is empty" in message, (args, message)
