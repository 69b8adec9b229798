"""``aiosys tasks list|show|claim|release|complete`` on both stores: the inbox as JSON and as
tables, a decision that wakes its run, an edit checked against the form of the app's module
(``--app cliapp:app``), refusals as one ``error:`` line (exit 1; a malformed command line or
``--data`` exit 2), and a key's principal acting with its role only."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tests.integration.test_identity_cli import _env, create_key
from tests.unit.clirunner import aiosys, ok, reported_error

import aiosys as aiosys_pkg

APP = ["--app", "cliapp:app"]

pytestmark = pytest.mark.timeout(120)


_ = _env  # autouse: cliapp importable, a key secret, no ambient credential or aiosys.toml


def worker_app(store: str) -> aiosys_pkg.App:
    """``cliapp``'s workflows on ``store``, in an app of this test."""
    import cliapp

    app = aiosys_pkg.App(store, models_dir="", preload_models=False)
    app.workflow(cliapp.reviewed)
    return app


def parked_run(store: str, tenant: str = "A") -> str:
    """A ``reviewed`` run parked on its task (a worker ran it, then stopped)."""

    async def body() -> str:
        app = worker_app(store)
        async with app:
            run = await app.start("reviewed", {"text": "draft"}, tenant=tenant)
            async with asyncio.timeout(20):
                while True:
                    if await run.status() == "waiting":
                        break
                    await asyncio.sleep(0.01)
        return run.id

    return asyncio.run(body())


def finish(store: str, run_id: str) -> Any:
    """Run a worker until ``run_id`` ends; its result."""

    async def body() -> Any:
        app = worker_app(store)
        async with app:
            return await app.handle(run_id).result(timeout=20)

    return asyncio.run(body())


def tasks(*args: str) -> Any:
    return aiosys("tasks", *args)


def test_the_inbox_lists_shows_claims_and_completes_a_task_as_json(store_url: str) -> None:
    s = ["--store", store_url]
    run_id = parked_run(store_url)
    (task,) = json.loads(ok(tasks("list", "--json", *s)).stdout)
    assert (task["name"], task["role"], task["status"], task["run_id"]) == (
        "review",
        "paralegal",
        "open",
        run_id,
    )
    assert task["data"] == {"summary": "draft", "score": 5}
    assert task["form"]["ref"] == "cliapp:Review"
    assert task["due_at"].endswith("+00:00") and task["tenant"] == "A"
    assert json.loads(ok(tasks("list", "--json", "--limit", "1", "--status", "any", *s)).stdout)
    assert json.loads(ok(tasks("list", "--json", "--status", "completed", *s)).stdout) == []
    assert json.loads(ok(tasks("list", "--json", "--run", "nope", *s)).stdout) == []
    table = ok(tasks("list", *s)).stdout
    assert "1 task" in table and task["id"] in table and "paralegal" in table

    shown = json.loads(ok(tasks("show", task["id"], "--json", *s)).stdout)
    assert shown["id"] == task["id"] and shown["run_status"] == "waiting"
    view = ok(tasks("show", task["id"], *s)).stdout
    assert "review" in view and "cliapp:Review (summary: string, score: integer)" in view

    claimed = json.loads(ok(tasks("claim", task["id"], "--json", *s)).stdout)
    assert (claimed["status"], claimed["claimed_by"]) == ("claimed", "local")
    assert "released to the role paralegal" in ok(tasks("release", task["id"], *s)).stdout

    # An edit the form refuses: one error line, the task stays open.
    bad = json.dumps({"summary": "x", "score": 99})
    error = reported_error(
        tasks("complete", task["id"], "--action", "edit", "--data", bad, *APP, *s)
    )
    assert "does not fit its form Review: score" in error
    good = json.dumps({"summary": "better", "score": 8})
    done = json.loads(
        ok(
            tasks(
                "complete",
                task["id"],
                "--action",
                "edit",
                "--data",
                good,
                "--comment",
                "tightened",
                "--json",
                *APP,
                *s,
            )
        ).stdout
    )
    assert done["status"] == "completed" and done["decided_at"].endswith("+00:00")
    assert done["decision"]["data"] == {"summary": "better", "score": 8}
    error = reported_error(tasks("complete", task["id"], "--action", "approve", *s))
    assert "decided by local already" in error
    result = finish(store_url, run_id)
    assert (result["action"], result["comment"], result["decided_by"]) == (
        "edit",
        "tightened",
        "local",
    )
    assert json.loads(ok(tasks("list", "--json", *s)).stdout) == []


def test_malformed_commands_exit_2_and_refusals_exit_1(store_url: str) -> None:
    s = ["--store", store_url]
    run_id = parked_run(store_url)
    (task,) = json.loads(ok(tasks("list", "--json", "--run", run_id, *s)).stdout)
    tid = task["id"]
    assert "--action must be one of" in reported_error(
        tasks("complete", tid, "--action", "maybe", *s), 2
    )
    assert "--data is not valid JSON" in reported_error(
        tasks("complete", tid, "--action", "edit", "--data", "{oops", *s), 2
    )
    assert "needs --data" in reported_error(tasks("complete", tid, "--action", "edit", *s), 2)
    assert "--data goes with --action edit only" in reported_error(
        tasks("complete", tid, "--action", "reject", "--data", "{}", *s), 2
    )
    assert "unknown status" in reported_error(tasks("list", "--status", "done", *s), 2)
    assert "no human task with id 'nope'" in reported_error(tasks("show", "nope", *s))
    # A key without the task's role is refused; one with it decides.
    viewer = create_key(store_url, "A", "vic", "viewer")["key"]
    paralegal = create_key(store_url, "A", "pat", "paralegal")["key"]
    as_vic = ["--api-key", viewer]
    assert json.loads(ok(aiosys(*as_vic, "tasks", "list", "--json", *s)).stdout) == []
    error = reported_error(aiosys(*as_vic, "tasks", "complete", tid, "--action", "approve", *s))
    assert "complete_task" in error and "role paralegal" in error
    ok(aiosys("--api-key", paralegal, "tasks", "complete", tid, "--action", "reject", *s))
    assert finish(store_url, run_id)["decided_by"] == "pat"
