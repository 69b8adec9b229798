"""``aiosys runs list --stranded``: the claimable runs that no live worker serves, with and
without a live worker in the store's registry, as a table and as JSON, on both stores.

The live worker here is its registry row, written as a worker writes it (``beat_worker``);
``tests/acceptance/test_stranded.py`` runs a real worker process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.unit.clirunner import aiosys, ok, reported_error

from aiosys.store import open_store
from aiosys.store.base import WorkerInfo

TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli_store(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    monkeypatch.chdir(tmp_path)
    return store_url


def start(store: str, workflow: str, payload: str) -> str:
    out = ok(aiosys("start", workflow, "-i", payload, "--app", "cliapp:app", "--store", store))
    return out.stdout.strip().split()[-1]


def register(store: str, *wf_keys: str) -> None:
    async def beat() -> None:
        s = open_store(store)
        await s.open()
        try:
            await s.beat_worker(
                WorkerInfo(
                    id="host-a:4242:cafe",
                    host="host-a",
                    pid=4242,
                    queues=("default",),
                    wf_keys=wf_keys,
                    lease=30.0,
                )
            )
        finally:
            await s.close()

    asyncio.run(beat())


def stranded(store: str, *args: str) -> dict[str, list[dict[str, object]]]:
    out = ok(aiosys("runs", "list", "--stranded", "--json", "--store", store, *args))
    value: dict[str, list[dict[str, object]]] = json.loads(out.stdout)
    return value


def test_with_no_live_worker_every_pending_run_is_stranded_and_it_says_so(cli_store: str) -> None:
    greet = start(cli_store, "greet", '{"name": "ada"}')
    double = start(cli_store, "double", '{"x": 2}')

    text = ok(aiosys("runs", "list", "--stranded", "--store", cli_store)).stdout
    assert "2 stranded runs" in text and greet in text and double in text
    assert "no live worker is registered in this store: every claimable run is stranded" in text

    listed = stranded(cli_store)
    assert listed["live_workers"] == []
    assert {r["id"] for r in listed["stranded"]} == {greet, double}
    run = next(r for r in listed["stranded"] if r["id"] == greet)
    assert (run["workflow"], run["version"], run["status"], run["queue"]) == (
        "greet",
        "1",
        "pending",
        "default",
    )
    assert isinstance(run["claimable_since"], str)


def test_only_runs_of_versions_no_live_worker_serves_are_stranded(cli_store: str) -> None:
    greet = start(cli_store, "greet", '{"name": "ada"}')  # greet@1
    double = start(cli_store, "double", '{"x": 2}')  # double@1
    register(cli_store, "greet@2", "double@1")  # deployed with greet version 2

    listed = stranded(cli_store)
    assert [r["id"] for r in listed["stranded"]] == [greet]
    (worker,) = listed["live_workers"]
    assert (worker["id"], worker["host"], worker["pid"]) == ("host-a:4242:cafe", "host-a", 4242)
    assert (worker["queues"], worker["serves"]) == (["default"], ["greet@2", "double@1"])

    text = ok(aiosys("runs", "list", "--stranded", "--store", cli_store)).stdout
    assert "1 stranded run" in text and greet in text and double not in text
    assert "live worker host-a:4242:cafe: queues default; serves greet@2, double@1" in text
    assert "no live worker" not in text

    # the filters of `runs list` apply
    assert stranded(cli_store, "--workflow", "double")["stranded"] == []
    assert stranded(cli_store, "--tenant", "nobody")["stranded"] == []
    # the plain list still lists both
    plain = json.loads(ok(aiosys("runs", "list", "--json", "--store", cli_store)).stdout)
    assert {r["id"] for r in plain} == {greet, double}


def test_stranded_takes_no_status(cli_store: str) -> None:
    error = reported_error(
        aiosys("runs", "list", "--stranded", "--status", "pending", "--store", cli_store), code=2
    )
    assert "--stranded" in error and "--status" in error
