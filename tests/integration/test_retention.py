"""Retention, end to end on both stores: a worker of an app with ``retention`` prunes runs that
ended longer ago than it (its clock is moved by the test, never waited for), and budgets keep
counting the spend of the model calls of pruned runs.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import until
from tests.integration.test_prune import DAY, TABLES, rows_of

from aiosys import App, Context
from aiosys.errors import BudgetExceeded, ConfigError, RunFailed
from aiosys.kernel.retention import Pruner, configured_retention
from aiosys.models.links.budget import Budget, period_start
from aiosys.models.links.metering import spent
from aiosys.models.providers.local import register_callable, unregister_callable
from aiosys.store.base import TERMINAL


def retention_app(store_url: str, **kw: Any) -> App:
    app = App(store=store_url, **kw)

    @app.workflow
    async def quick(ctx: Context) -> str:
        return "done"

    @app.workflow
    async def waits(ctx: Context) -> Any:
        return await ctx.wait_for("go")

    return app


async def test_a_worker_prunes_runs_older_than_the_apps_retention(store_url: str) -> None:
    app = retention_app(store_url, retention="30d")
    async with app:
        pruner = app._worker.pruner
        assert isinstance(pruner, Pruner) and pruner.keep == 30 * DAY
        done = [await app.start("quick") for _ in range(3)]
        for handle in done:
            assert await handle.result(timeout=20) == "done"
        waiting = await app.start("waits")

        async def a_pass() -> int:
            n = pruner.passes
            pruner.kick()
            await until(lambda: pruner.passes > n)
            assert pruner.last is not None
            return pruner.last.runs

        # 29 days later, nothing has ended long enough.
        offset = 29 * DAY
        pruner.clock = lambda: app.store.clock() + offset
        assert await a_pass() == 0
        # 31 days later, the three ended runs go; the waiting one stays.
        offset = 31 * DAY
        assert await a_pass() == 3
        ids = [h.id for h in done]
        assert rows_of(store_url, ids) == dict.fromkeys(TABLES, 0)
        row = await app.get_run(waiting.id)
        assert row.status == "waiting"
        await app.signal(waiting.id, "go", 1)
        assert await waiting.result(timeout=20) == 1


async def test_without_retention_a_worker_never_prunes(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no aiosys.toml here
    app = retention_app(store_url)
    async with app:
        assert app._worker.pruner is None


async def test_retention_in_aiosys_toml_is_the_default_and_the_app_wins(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "aiosys.toml").write_text('retention = "2w"\n')
    async with retention_app(store_url) as app:
        assert app._worker.pruner.keep == 14 * DAY
    async with retention_app(store_url, retention=timedelta(hours=12)) as app:
        assert app._worker.pruner.keep == 12 * 3600


def test_a_bad_retention_is_refused_naming_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="retention must be a positive length of time"):
        App(retention=0)
    with pytest.raises(ConfigError, match=r"'30 days' is not a duration"):
        App(retention="30 days")
    toml = tmp_path / "aiosys.toml"
    toml.write_text("retention = true\n")
    with pytest.raises(ConfigError, match=r"retention in .*aiosys\.toml must be a duration"):
        configured_retention(None, toml)
    toml.write_text('retention = "soon"\n')
    with pytest.raises(ConfigError, match="'soon' is not a duration"):
        configured_retention(None, toml)
    toml.write_text("retention = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        configured_retention(None, toml)
    toml.write_text('store = "sqlite:///x.db"\n')
    assert configured_retention(None, toml) is None
    assert configured_retention(60.0, toml) == 60.0


async def test_a_failing_pass_is_logged_and_the_next_one_runs(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = retention_app(store_url, retention=3600)
    async with app:
        pruner = app._worker.pruner
        real = pruner.store

        class Down:
            def clock(self) -> float:
                return real.clock()

            async def prune(self, *a: Any, **kw: Any) -> Any:
                raise OSError("connection refused")

        pruner.store = Down()
        n = pruner.passes
        pruner.kick()
        await until(lambda: pruner.passes > n)
        assert "retention: pruning failed (connection refused)" in caplog.text
        assert pruner.last is None
        pruner.store = real
        pruner.kick()
        await until(lambda: pruner.last is not None)
        assert pruner.last is not None and pruner.last.runs == 0


async def test_pruning_over_and_over_beside_a_worker_loses_no_live_run(store_url: str) -> None:
    """Runs start children, wait for them and end while prunes with a cutoff ahead of every
    end go on: a child that ended is kept until its parent has ended, so every parent still
    gets its children's results."""
    app = App(store=store_url)
    results: list[int] = []

    @app.step
    async def add(x: int) -> int:
        return x + 1

    @app.step
    async def report(x: int) -> None:
        results.append(x)

    @app.workflow
    async def leaf(ctx: Context, x: int) -> int:
        return await add(x)

    @app.workflow
    async def parent(ctx: Context, x: int) -> None:
        a = await ctx.child("leaf", {"x": x})
        b = await ctx.child("leaf", {"x": a})
        await report(b)

    pruned = 0
    done = asyncio.Event()

    async def pruning() -> None:
        nonlocal pruned
        while not done.is_set():
            pruned += (await app.store.prune(app.store.clock() + 60, batch=3)).runs
            await asyncio.sleep(0.005)  # pacing, so the worker gets the store too

    async with app:
        task = asyncio.create_task(pruning())
        try:
            handles = [await app.start("parent", {"x": i * 10}) for i in range(20)]
            await until(lambda: len(results) == 20, timeout=60)

            async def all_ended() -> bool:  # or pruned already
                rows = [await app.store.get_run(h.id) for h in handles]
                return all(row is None or row.status in TERMINAL for row in rows)

            async with asyncio.timeout(30):
                while not await all_ended():  # noqa: ASYNC110 - polling the store
                    await asyncio.sleep(0.01)
        finally:
            done.set()
            await task
        pruned += (await app.store.prune(app.store.clock() + 60)).runs
    assert sorted(results) == [i * 10 + 2 for i in range(20)]
    assert pruned == 60  # every parent and both its children, each deleted once


# ---- budgets -----------------------------------------------------------------------------


async def _ok(messages: Any) -> str:
    return "ok"


async def test_budgets_keep_counting_the_spend_of_pruned_runs(store_url: str) -> None:
    register_callable("prune-ok", _ok)
    try:
        app = App(store=store_url)
        app.models.add_card(
            {
                "id": "m",
                "provider": "local",
                "options": {"callable": "prune-ok"},
                "pricing": {"per_call": 0.004},
                "timeout": 10,
            }
        )
        for period in ("total", "month", "day"):
            app.models.budgets.add(Budget("tenant", "acme", 0.010, period=period))

        @app.workflow
        async def asks(ctx: Context) -> str:
            return (await ctx.models.call("m", "hi")).output

        async with app:
            runs = [await app.start("asks", tenant="acme") for _ in range(2)]
            for run in runs:
                assert await run.result(timeout=20) == "ok"
            t = app.store.clock()
            before = {
                p: await spent(app.store, "acme", since=period_start(p, t))
                for p in ("total", "month", "day")
            }
            assert before == pytest.approx(dict.fromkeys(before, 0.008))
            ids = [r.id for r in runs]
            assert rows_of(store_url, ids)["model_usage"] == 2

            report = await app.store.prune(app.store.clock() + 1)

            assert (report.runs, report.usage) == (2, 2)
            assert rows_of(store_url, ids) == dict.fromkeys(TABLES, 0)
            after = {p: await spent(app.store, "acme", since=period_start(p, t)) for p in before}
            assert after == pytest.approx(before)
            # The limit still holds: a third call of 0.004 would pass 0.010.
            third = await app.start("asks", tenant="acme")
            with pytest.raises(RunFailed, match=r"hard total budget"):
                await third.result(timeout=20)
            assert BudgetExceeded.__name__ in ((await app.get_run(third.id)).error or "")
    finally:
        unregister_callable("prune-ok")
