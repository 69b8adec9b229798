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

    await app.open()
    try:
        bob = await app.identity.authenticate(bob_key)
        async with app.as_principal(bob):
            pending = await app.start("waits")
        return {"run": pending.id}
    finally:
        await app.close()


def test_the_cli_tenant_walk_every_command_as_a_against_b(store_url: str) -> None:
    store = store_url
    alice = create_key(store, "A", "alice", "admin")
    bob = create_key(store, "B", "bob", "admin")
    b = asyncio.run(b_objects(store, bob["key"]))
    run_id = b["run"]
    s = ["--store", store]
    walk: dict[str, list[list[str]]] = {
        "run": [["run", "greet", "-i", '{"name": "x"}', "--tenant", "B", "--app", APP, *s]],
        "start": [["start", "greet", "-i", '{"name": "x"}', "--tenant", "B", "--app", APP, *s]],
        "demo": [["demo", *s]],
        "worker": [["worker", "--app", APP, *s]],
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
        "audit export": [["audit", "export", "--tenant", "B", *s]],
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
            leaks = ("waits", "pending", "'bob'", bob["key"])
            assert not any(leak in error for leak in leaks), (name, error)
    # What A sees without naming B: nothing of B's.
    as_a = ["--api-key", alice["key"]]
    assert json.loads(ok(aiosys(*as_a, "runs", "list", "--json", *s)).stdout) == []
    assert json.loads(ok(aiosys(*as_a, "models", "usage", "--json", *s)).stdout) == []
    assert json.loads(ok(aiosys(*as_a, "models", "shadows", "--json", *s)).stdout) == []
    used = ok(aiosys(*as_a, "lineage", "runs", "--model", "m", "--json", *s)).stdout
    assert json.loads(used) == []
    assert not Path("ol.jsonl").exists()
    mine = json.loads(ok(aiosys(*as_a, "stats", "--json", *s)).stdout)
    assert (mine["tenant"], mine["workflows"], mine["models"]) == ("A", [], [])
    assert 'tenant="B"' not in ok(aiosys(*as_a, "metrics", *s)).stdout
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
    ok(aiosys("keys", "revoke", info["id"], *s))
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
        aiosys("keys", "create", "--tenant", "A", "--principal", "p", "--store", store)
    )
    assert "no role in tenant 'A'" in error
