"""The ``aiosys`` command as a principal (``--api-key`` / ``AIOSYS_API_KEY``), on both stores:
``aiosys keys create|list|revoke``, and the tenant walk over every command as tenant A
against tenant B's runs, usage and keys: a refusal or nothing."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import typer
from tests.unit.clirunner import aiosys, ok, reported_error

import aiosys as aiosys_pkg
from aiosys.cli.main import cli

TESTS_DIR = Path(__file__).resolve().parents[1]
APP = "cliapp:app"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AIOSYS_KEY_SECRET", "c" * 40)
    for var in [v for v in os.environ if v.startswith("AIOSYS_JWT_") or v == "AIOSYS_API_KEY"]:
        monkeypatch.delenv(var)


def create_key(store: str, tenant: str, who: str, *roles: str, api_key: str = "") -> Any:
    args = ["keys", "create", "--tenant", tenant, "--principal", who, "--json", "--store", store]
    for role in roles:
        args += ["--role", role]
    prefix = ["--api-key", api_key] if api_key else []
    return json.loads(ok(aiosys(*prefix, *args)).stdout)


def commands(group: Any, prefix: tuple[str, ...] = ()) -> set[str]:
    out: set[str] = set()
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group (typer carries its own click)
            out |= commands(cmd, (*prefix, name))
        else:
            out.add(" ".join((*prefix, name)))
    return out


# Commands the walk does not run as A against B, and why; every other command is walked.
EXEMPT = {
    "init": "writes aiosys.toml and workflows.py here: no tenant data",
    "models list": "the model catalog, shared by every tenant",
    "models show": "the model catalog, shared by every tenant",
    "policy check": "answers a hypothetical request from the policy files: no tenant data",
    "policy validate": "reads the policy files: no tenant data",
    "policy reload": "validates the policy files and touches the schema: no tenant data",
}


async def b_objects(store: str, bob_key: str) -> dict[str, str]:
    app = aiosys_pkg.App(store, models_dir="", preload_models=False)

    @app.workflow
    async def waits(ctx: aiosys_pkg.Context) -> None:
        await ctx.wait_for("go")

    @app.workflow
    async def signoff(ctx: aiosys_pkg.Context) -> str:
        return (await ctx.human_task("sign-off", role="admin", data={"doc": "b"})).action

    await app.open()
    try:
        bob = await app.identity.authenticate(bob_key)
        async with app.as_principal(bob):
            pending = await app.start("waits")
        async with app.embedded(own_runs_only=True):  # parks B's task, then stops
            async with app.as_principal(bob):
                asking = await app.start("signoff")
                async with asyncio.timeout(20):
                    while True:  # its task written and the run parked on it
                        found = await app.list_tasks()
                        if found and await asking.status() == "waiting":
                            break
                        await asyncio.sleep(0.01)
        return {"run": pending.id, "asking": asking.id, "task": found[0].id}
    finally:
        await app.close()


def test_the_cli_tenant_walk_every_command_as_a_against_b(store_url: str) -> None:
    store = store_url
    alice = create_key(store, "A", "alice", "admin")
    bob = create_key(store, "B", "bob", "admin")
    b = asyncio.run(b_objects(store, bob["key"]))
    run_id, task_id = b["run"], b["task"]
    s = ["--store", store]
    period = ["--from", "2000-01-01", "--to", "2100-01-01"]
    ai_act = [*period, "--tenant", "B", "-o", "aiact"]
    walk: dict[str, list[list[str]]] = {
        "run": [["run", "greet", "-i", '{"name": "x"}', "--tenant", "B", "--app", APP, *s]],
        "start": [["start", "greet", "-i", '{"name": "x"}', "--tenant", "B", "--app", APP, *s]],
        "demo": [["demo", *s]],
        "worker": [["worker", "--app", APP, *s]],
        "server": [["server", "--app", APP, *s]],
        "runs list": [["runs", "list", "--tenant", "B", *s]],
        "runs show": [
            ["runs", "show", run_id, *s],
            ["runs", "show", run_id, "--tenant", "B", *s],
            ["runs", "show", run_id, "--trace", *s],
            ["runs", "show", run_id, "--trace", "--json", "--tenant", "B", *s],
        ],
        "runs cancel": [["runs", "cancel", run_id, *s]],
        "runs resume": [["runs", "resume", run_id, *s]],
        "runs signal": [["runs", "signal", run_id, "go", *s]],
        "runs prune": [["runs", "prune", "--before", "0s", "--tenant", "B", *s]],
        "audit verify": [["audit", "verify", *s]],
        "audit export": [
            ["audit", "export", "--tenant", "B", *s],
            ["audit", "export", "--format", "ai-act", "--workflow", "signoff", *ai_act, *s],
        ],
        "audit checkpoint": [["audit", "checkpoint", *s]],
        "models sync": [["models", "sync", *s]],
        "models delete": [["models", "delete", "some-model", *s]],
        "models usage": [["models", "usage", "--tenant", "B", *s]],
        "models shadows": [["models", "shadows", "--tenant", "B", *s]],
        "keys create": [
            ["keys", "create", "--tenant", "B", "--principal", "eve", "--role", "admin", *s]
        ],
        "keys list": [["keys", "list", "--tenant", "B", *s]],
        "stats": [["stats", "--tenant", "B", *s]],
        "slo check": [["slo", "check", "--tenant", "B", *s]],
        "metrics": [["metrics", "--tenant", "B", *s]],
        "keys revoke": [["keys", "revoke", bob["id"], *s]],
        "tasks list": [["tasks", "list", "--tenant", "B", *s]],
        "tasks show": [
            ["tasks", "show", task_id, *s],
            ["tasks", "show", task_id, "--tenant", "B", *s],
        ],
        "tasks claim": [["tasks", "claim", task_id, *s]],
        "tasks release": [["tasks", "release", task_id, *s]],
        "tasks complete": [
            ["tasks", "complete", task_id, "--action", "approve", *s],
            ["tasks", "complete", task_id, "--action", "approve", "--tenant", "B", *s],
        ],
        "lineage show": [
            ["lineage", "show", run_id, *s],
            ["lineage", "show", run_id, "--json", "--tenant", "B", *s],
        ],
        "lineage runs": [["lineage", "runs", "--model", "m@1", "--tenant", "B", *s]],
        "lineage export": [["lineage", "export", run_id, "--output", "ol.jsonl", *s]],
    }
    assert commands(typer.main.get_command(cli)) == set(walk) | set(EXEMPT)
    for name, invocations in walk.items():
        for args in invocations:
            error = reported_error(aiosys("--api-key", alice["key"], *args))
            # Nothing of B's shows: not its run's workflow or status, not its key.
            leaks = ("waits", "pending", "'bob'", bob["key"], "sign-off", "signoff")
            assert not any(leak in error for leak in leaks), (name, error)
    # What A sees without naming B: nothing of B's.
    as_a = ["--api-key", alice["key"]]
    assert json.loads(ok(aiosys(*as_a, "runs", "list", "--json", *s)).stdout) == []
    listed = ok(aiosys(*as_a, "tasks", "list", "--json", "--status", "any", *s)).stdout
    assert json.loads(listed) == []
    assert json.loads(ok(aiosys(*as_a, "models", "usage", "--json", *s)).stdout) == []
    assert json.loads(ok(aiosys(*as_a, "models", "shadows", "--json", *s)).stdout) == []
    used = ok(aiosys(*as_a, "lineage", "runs", "--model", "m", "--json", *s)).stdout
    assert json.loads(used) == []
    assert not Path("ol.jsonl").exists()
    mine = json.loads(ok(aiosys(*as_a, "stats", "--json", *s)).stdout)
    assert (mine["tenant"], mine["workflows"], mine["models"]) == ("A", [], [])
    assert 'tenant="B"' not in ok(aiosys(*as_a, "metrics", *s)).stdout
    # B's workflow is not known in A's tenant (it never ran there); nothing is written.
    mine_ai = ["audit", "export", "--format", "ai-act", "--workflow", "signoff", *period]
    unknown = reported_error(aiosys(*as_a, *mine_ai, "-o", "aiact", *s), 2)
    assert "never ran in tenant 'A'" in unknown and not Path("aiact").exists()
    extract = ok(aiosys(*as_a, "audit", "export", *s)).stdout  # A's own records only
    assert run_id not in extract and '"tenant":"B"' not in extract.replace(" ", "")
    listed = json.loads(ok(aiosys(*as_a, "keys", "list", "--json", *s)).stdout)
    assert [k["id"] for k in listed] == [alice["id"]]
    # B's run and key are untouched.
    shown = json.loads(
        ok(aiosys("--api-key", bob["key"], "runs", "show", run_id, "--json", *s)).stdout
    )
    # Not ended (the worker of `aiosys run` may have taken it, as B's principal).
    assert shown["status"] in ("pending", "running", "waiting")
    b_task = json.loads(
        ok(aiosys("--api-key", bob["key"], "tasks", "show", task_id, "--json", *s)).stdout
    )
    assert (b_task["status"], b_task["decision"]) == ("open", None)
    every = json.loads(ok(aiosys("keys", "list", "--json", *s)).stdout)
    assert {k["id"]: k["status"] for k in every} == {alice["id"]: "active", bob["id"]: "active"}


def test_keys_create_list_revoke_and_refused_keys(store_url: str) -> None:
    s = ["--store", store_url]
    made = ok(
        aiosys(
            "keys",
            "create",
            "--tenant",
            "A",
            "--principal",
            "svc",
            "--kind",
            "service",
            "--role",
            "runner",
            "--expires",
            "2w",
            *s,
        )
    )
    key = made.stdout.strip()
    assert key.startswith("aiosys_") and "shown this once" in made.stderr
    listed = ok(aiosys("keys", "list", *s)).stdout
    assert "svc" in listed and "runner" in listed and key not in listed
    listed_json = ok(aiosys("keys", "list", "--json", *s)).stdout
    assert key not in listed_json and key.split("_", 2)[2] not in listed_json
    (info,) = json.loads(listed_json)
    assert info["kind"] == "service" and info["status"] == "active"
    assert info["expires_at"] - info["created_at"] == 14 * 86400
    # The key acts in its tenant with its roles.
    started = ok(
        aiosys("--api-key", key, "start", "greet", "-i", '{"name": "y"}', "--app", APP, *s)
    ).stdout.strip()
    row = json.loads(ok(aiosys("runs", "show", started, "--json", *s)).stdout)
    assert row["tenant"] == "A"
    error = reported_error(aiosys("--api-key", key, "runs", "cancel", started, *s))
    assert "roles: runner" in error and "cancel run" in error
    said = ok(aiosys("keys", "revoke", info["id"], *s)).stdout
    assert said.strip() == f"key {info['id']} of tenant 'A' revoked", said
    # Again: it was revoked already, at the first time, which is kept (it said "revoked"
    # as if it were revoked now).
    again = ok(aiosys("keys", "revoke", info["id"], *s)).stdout
    assert f"key {info['id']} of tenant 'A' was revoked already, at " in again, again
    error = reported_error(aiosys("--api-key", key, "runs", "list", *s))
    assert f"API key {info['id']} was revoked" in error and key not in error
    error = reported_error(
        aiosys("--api-key", "aiosys_0123456789abcdef_" + "z" * 43, "runs", "list", *s)
    )
    assert "unknown API key 0123456789abcdef" in error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--expires", "soon"], "--expires 'soon'"),
        (["--kind", "robot"], "--kind must be one of"),
        (["--tenant", ""], "tenant is empty"),
        (["--tenant", " A"], "without outer spaces"),
        (["--principal", ""], "principal is empty"),
    ],
)
def test_keys_create_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    store = f"sqlite:///{tmp_path}/u.db"
    result = aiosys(
        "keys",
        "create",
        "--tenant",
        "A",
        "--principal",
        "p",
        "--role",
        "viewer",
        *args,
        "--store",
        store,
    )
    assert message in reported_error(result, 2)


def test_a_key_with_no_role_is_refused(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/r.db"
    error = reported_error(
        aiosys("keys", "create", "--tenant", "A", "--principal", "p", "--store", store), 2
    )
    assert "no role in tenant 'A'" in error  # no --role: a usage error


def test_runs_list_stranded_as_a_shows_nothing_of_b(store_url: str) -> None:
    """``runs list --stranded`` reads the store directly: it is scoped like ``runs list``
    (a key sees its tenant's stranded runs only; ``--tenant`` of another is refused)."""
    store = store_url
    alice = create_key(store, "A", "alice", "admin")
    bob = create_key(store, "B", "bob", "admin")
    run_id = asyncio.run(b_objects(store, bob["key"]))["run"]  # pending: no worker serves it
    s = ["--store", store]
    as_a = ["--api-key", alice["key"]]
    listed = json.loads(ok(aiosys(*as_a, "runs", "list", "--stranded", "--json", *s)).stdout)
    assert listed["stranded"] == []
    error = reported_error(aiosys(*as_a, "runs", "list", "--stranded", "--tenant", "B", *s))
    assert run_id not in error and "may not" in error
    # B sees its own; the local operator sees every tenant's.
    as_b = ["--api-key", bob["key"]]
    mine = json.loads(ok(aiosys(*as_b, "runs", "list", "--stranded", "--json", *s)).stdout)
    assert [r["id"] for r in mine["stranded"]] == [run_id]
    every = json.loads(ok(aiosys("runs", "list", "--stranded", "--json", *s)).stdout)
    assert [r["id"] for r in every["stranded"]] == [run_id]


def test_runs_prune_with_an_api_key_names_the_tenant_it_pruned(store_url: str) -> None:
    alice = create_key(store_url, "A", "alice", "admin")
    args = ("runs", "prune", "--before", "30d", "--store", store_url)
    report = json.loads(ok(aiosys("--api-key", alice["key"], *args, "--json")).stdout)
    assert report["tenant"] == "A"  # the key's, though --tenant was left out
    assert "in tenant 'A'" in ok(aiosys("--api-key", alice["key"], *args)).stdout
    assert json.loads(ok(aiosys(*args, "--json")).stdout)["tenant"] is None  # every tenant


def test_run_serve_others_refuses_an_api_key(store_url: str) -> None:
    """``run --serve-others`` executes the store's other pending runs, every tenant's, as a
    worker does: like ``aiosys worker`` it refuses a key (tenant A's key ran B's run)."""
    store = store_url
    alice = create_key(store, "A", "alice", "admin")
    bob = create_key(store, "B", "bob", "admin")
    run_id = asyncio.run(b_objects(store, bob["key"]))["run"]
    s = ["--store", store]
    args = ["run", "greet", "-i", '{"name": "x"}', "--serve-others", "--app", APP, *s]
    error = reported_error(aiosys("--api-key", alice["key"], *args))
    assert "without an API key" in error
    shown = json.loads(ok(aiosys("runs", "show", run_id, "--json", *s)).stdout)
    assert (shown["status"], shown["attempts"]) == ("pending", [])
    # Without --serve-others a key still runs its own run here.
    own = ["run", "greet", "-i", '{"name": "x"}', "--json", "--app", APP, *s]
    assert json.loads(ok(aiosys("--api-key", alice["key"], *own)).stdout)["tenant"] == "A"
