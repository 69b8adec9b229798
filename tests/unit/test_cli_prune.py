"""``aiosys runs prune`` against a real SQLite file: what it deletes, what it prints, and how it
refuses a bad ``--before`` (the store side is tested on both stores in
tests/integration/test_prune.py)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from tests.integration.test_prune import TABLES, backdate, ended, live, rows_of, times
from tests.unit.clirunner import aiosys, ok, reported_error

from aiosys.store import open_store


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # nothing may land in the repository's .aiosys/
    return f"sqlite:///{tmp_path / 'prune.db'}"


def make_runs(url: str, old: int = 0, recent: int = 0, tenant: str = "acme") -> list[list[str]]:
    """``old`` runs that ended 40 days ago, ``recent`` that ended now, and a waiting one."""

    async def body() -> list[list[str]]:
        s = open_store(url)
        await s.open()
        try:
            olds = [(await ended(s, tenant=tenant)).id for _ in range(old)]
            recents = [(await ended(s, tenant=tenant)).id for _ in range(recent)]
            waiting = [(await live(s, "waiting", tenant=tenant)).id]
        finally:
            await s.close()
        return [olds, recents, waiting]

    made = asyncio.run(body())
    backdate(url, made[0], days=40)
    return made


def test_prune_deletes_runs_ended_before_the_duration_and_prints_the_counts(store: str) -> None:
    old, recent, waiting = make_runs(store, old=2, recent=1)

    out = ok(aiosys("runs", "prune", "--before", "30d", "--json", "--store", store)).stdout

    report = json.loads(out)
    assert report.pop("before").endswith("Z")
    assert report == {
        "dry_run": False,
        "tenant": None,
        "runs": 2,
        "effects": 4,
        "signals": 2,
        "usage": 2,
        "shadows": 2,
        "cache": 2,
        "tasks": 2,
        "pseudonyms": 2,
        "reservations": 0,
    }
    assert rows_of(store, old) == dict.fromkeys(TABLES, 0)
    assert rows_of(store, recent + waiting) == times(2)


def test_prune_says_what_it_deleted_in_one_line(store: str) -> None:
    make_runs(store, old=1)
    out = ok(aiosys("runs", "prune", "--before", "2w", "--store", store)).stdout
    assert out.startswith("pruned 1 run that ended before ")
    assert out.rstrip().endswith(
        ": 2 effects, 1 signal, 1 model usage row, 1 shadow outcome, 1 cached answer, "
        "1 human task, 1 pseudonym, 0 expired budget reservations"
    )
    assert len(out.splitlines()) == 1


def test_a_dry_run_deletes_nothing(store: str) -> None:
    old, _, _ = make_runs(store, old=2)
    out = ok(aiosys("runs", "prune", "--before", "30d", "--dry-run", "--store", store)).stdout
    assert out.startswith("would prune 2 runs that ended before ")
    assert rows_of(store, old) == times(2)


def test_a_tenant_prune_leaves_the_other_tenants_runs(store: str) -> None:
    acme = make_runs(store, old=1, tenant="acme")[0]
    globex = make_runs(store, old=2, tenant="globex")[0]
    args = ("runs", "prune", "--before", "30d", "--tenant", "globex", "--json", "--store", store)
    report = json.loads(ok(aiosys(*args)).stdout)
    assert (report["runs"], report["tenant"]) == (2, "globex")
    assert rows_of(store, globex)["runs"] == 0
    assert rows_of(store, acme)["runs"] == 1


def test_before_takes_an_iso_date(store: str) -> None:
    make_runs(store, old=1)
    args = ("runs", "prune", "--before", "2000-01-01", "--json", "--store", store)
    report = json.loads(ok(aiosys(*args)).stdout)
    assert (report["before"], report["runs"]) == ("2000-01-01T00:00:00Z", 0)


@pytest.mark.parametrize("value", ["30", "thirty days", "-5d", "2024-13-01", ""])
def test_a_bad_before_is_a_usage_error_in_one_line(store: str, value: str) -> None:
    message = reported_error(aiosys("runs", "prune", "--before", value, "--store", store), 2)
    assert message.startswith(f"error: --before: {value!r} is neither a duration")
    assert not Path(store.removeprefix("sqlite:///")).exists()  # refused before opening


def test_before_is_required(store: str) -> None:
    message = reported_error(aiosys("runs", "prune", "--store", store), 2)
    assert "Missing option '--before'" in message


def test_a_long_prune_shows_a_progress_bar_on_a_terminal_only(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiosys.cli.prune as cli_prune

    old, _, _ = make_runs(store, old=3)
    monkeypatch.setattr(cli_prune, "PRUNE_BATCH", 1)  # "long": more than one batch
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(cli_prune, "err", terminal)
    ok(aiosys("runs", "prune", "--before", "30d", "--store", store))
    assert "pruning runs" in screen.getvalue()
    assert rows_of(store, old)["runs"] == 0

    make_runs(store, old=3)
    monkeypatch.setattr(cli_prune, "err", Console(file=io.StringIO(), force_terminal=False))
    result = ok(aiosys("runs", "prune", "--before", "30d", "--store", store))
    assert result.stderr == ""
