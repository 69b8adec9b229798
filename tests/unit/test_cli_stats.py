"""``aiosys stats`` on a SQLite store: the tables, ``--json``, the filters, a malformed
``--since`` (one error line, exit 2), and that the local user's read imports neither the
kernel nor the model plane (the store alone, as ``runs list``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.integration.stats_seed import SeedRun, seed_model_calls, seed_reviews, seed_runs
from tests.unit.clirunner import aiosys, ok, reported_error
from tests.unit.test_cli_startup import NEVER, imported_by

from aiosys.store import open_store


async def _clock(url: str) -> float:
    store = open_store(url)
    await store.open()  # migrated
    try:
        return store.clock()
    finally:
        await store.close()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path}/s.db"
    now = asyncio.run(_clock(store))
    end = now - 30
    seed_runs(
        store,
        [SeedRun("intake", end - 3, end - 2, end, cost=0.25)] * 3
        + [SeedRun("intake", end - 3, end - 2, end, "dead", error="permanent")],
    )
    seed_model_calls(store, "gpt-x", end, [120.0, 80.0])
    seed_reviews(store, "intake", end, ["approve", "approve", "edit"])
    return store


def test_tables_and_json(url: str) -> None:
    out = ok(aiosys("stats", "--store", url)).stdout
    assert "workflows: runs that ended in the window" in out
    assert "intake" in out and "25.0%" in out  # 1 of 4 runs dead
    assert "66.7% of 3" in out  # 2 of 3 reviews approved without an edit
    assert "gpt-x" in out
    data = json.loads(ok(aiosys("stats", "--since", "1h", "--json", "--store", url)).stdout)
    (wf,) = data["workflows"]
    assert (wf["workflow"], wf["runs"], wf["failed"], wf["dead_letter_backlog"]) == (
        "intake",
        4,
        1,
        1,
    )
    assert wf["latency"]["p95"] == pytest.approx(2.0)
    assert (wf["human_reviews"], wf["without_human_edit"]) == (3, pytest.approx(2 / 3))
    assert wf["cost_per_completed_run"] == pytest.approx(0.25)
    assert {m["model"] for m in data["models"]} == {"gpt-x", "m"}
    assert data["tenant"] is None  # the local user: every tenant


def test_filters(url: str) -> None:
    data = json.loads(ok(aiosys("stats", "--model", "gpt-x", "--json", "--store", url)).stdout)
    assert [m["model"] for m in data["models"]] == ["gpt-x"]
    assert data["models"][0]["latency_ms"]["p50"] == 80.0
    data = json.loads(ok(aiosys("stats", "--workflow", "other", "--json", "--store", url)).stdout)
    assert data["workflows"] == [] and data["models"] == []
    data = json.loads(ok(aiosys("stats", "--tenant", "nobody", "--json", "--store", url)).stdout)
    assert data["workflows"] == []


@pytest.mark.parametrize("since", ["yesterday", "5", "-1h"])
def test_a_malformed_since_is_one_error_line_and_exit_2(url: str, since: str) -> None:
    error = reported_error(aiosys("stats", "--since", since, "--store", url), 2)
    assert "--since" in error and "duration" in error


@pytest.mark.parametrize("since", ["0s", "2999-01-01"])
@pytest.mark.parametrize("with_app", [False, True])
def test_an_empty_window_is_a_usage_error_exit_2(
    url: str, since: str, with_app: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    app: tuple[str, ...] = ()
    if with_app:  # through the app (app.stats), not the bare store
        monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
        app = ("--app", "cliapp:app")
    error = reported_error(aiosys("stats", "--since", since, *app, "--store", url), 2)
    assert "must be before now" in error


def test_the_local_users_stats_import_no_kernel_or_model_plane(url: str, tmp_path: Path) -> None:
    modules = imported_by(tmp_path, "stats", "--json", "--store", url)
    assert not [m for m in NEVER if m in modules]
