"""``aiosys slo check`` and ``app.check_slos``, on both stores: exit 1 when a workflow's p95
breaks its SLO, 0 when it holds; measured value, target and burn; SLOs in aiosys.toml and
in code; no data, none declared, malformed declarations. Runs are seeded with end times
and latencies relative to the store's clock (nothing waits on time)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.integration.stats_seed import SeedRun, seed_model_calls, seed_runs
from tests.unit.clirunner import aiosys, ok, reported_error

import aiosys as aiosys_pkg
from aiosys.errors import ConfigError
from aiosys.store import open_store


@pytest.fixture(autouse=True)
def _here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # the test's aiosys.toml, nothing else


async def clock(store_url: str) -> float:
    store = open_store(store_url)
    await store.open()
    try:
        return store.clock()
    finally:
        await store.close()


def seed_intake(store_url: str, latencies: list[float]) -> None:
    """Runs of `intake` that ended a minute ago, one per latency (seconds)."""
    now = asyncio.run(clock(store_url))
    end = now - 60
    seed_runs(store_url, [SeedRun("intake", end - lat - 1, end - lat, end) for lat in latencies])


TOML = """
[[slo]]
workflow = "intake"
objective = "p95_latency"
target = {target}
window = "1h"

[[slo]]
workflow = "intake"
objective = "error_rate"
target = 0.1
"""


@pytest.mark.parametrize(("target", "code"), [(20.0, 1), (30.0, 0)])
def test_slo_check_exits_1_when_p95_breaks_and_0_when_it_holds(
    store_url: str, target: float, code: int
) -> None:
    # 20 runs: p95 by nearest rank is the 19th smallest, 25 s.
    seed_intake(store_url, [1.0] * 18 + [25.0, 40.0])
    Path("aiosys.toml").write_text(TOML.format(target=target))
    result = aiosys("slo", "check", "--json", "--store", store_url)
    assert result.exit_code == code, result.output
    checked = json.loads(result.stdout)
    p95, errors = checked
    assert (p95["objective"], p95["measured"], p95["target"]) == ("p95_latency", 25.0, target)
    assert p95["burn"] == pytest.approx(25.0 / target)
    assert p95["status"] == ("broken" if code else "ok")
    assert (errors["measured"], errors["burn"], errors["status"]) == (0.0, 0.0, "ok")
    assert p95["samples"] == 20 and p95["source"] == "aiosys.toml [[slo]] #1"
    table = aiosys("slo", "check", "--store", store_url)
    assert table.exit_code == code
    assert "workflow intake" in table.stdout
    assert ("1 of 2 SLOs broken" if code else "all SLOs hold") in table.stdout


async def test_code_slos_error_budget_burn_models_and_no_data(store_url: str) -> None:
    app = aiosys_pkg.App(store_url, models_dir="", preload_models=False, audit=False)

    @app.workflow
    async def intake(ctx: aiosys_pkg.Context) -> None: ...

    @app.workflow
    async def quiet(ctx: aiosys_pkg.Context) -> None: ...  # declared, never ran: no data

    await app.open()
    try:
        now = app.store.clock()
        end = now - 60
        seed_runs(
            store_url,
            [SeedRun("intake", end - 2, end - 1, end)] * 3
            + [SeedRun("intake", end - 2, end - 1, end, "dead", error="permanent")],
        )
        seed_model_calls(store_url, "m1", end, [100.0, 200.0, 900.0], cost=0.3)
        app.slo(workflow="intake", objective="error_rate", target=0.1)  # 25% fail: burn 2.5
        app.slo(model="m1", objective="p95_latency", target=1.0, window="30m")  # 0.9 s
        app.slo(model="m1", objective="cost_per_call", target=0.2)  # 0.3: broken
        app.slo(workflow="quiet", objective="p95_latency", target=1.0)  # nothing ran
        results = await app.check_slos(toml=None)
    finally:
        await app.close()
    got = [(r.slo.subject, r.status, r.measured, r.burn) for r in results]
    assert got == [
        ("workflow intake", "broken", 0.25, pytest.approx(2.5)),
        ("model m1", "ok", 0.9, pytest.approx(0.9)),
        ("model m1", "broken", pytest.approx(0.3), pytest.approx(1.5)),
        ("workflow quiet", "no data", None, None),
    ]
    assert results[1].until - results[1].since == pytest.approx(1800.0)


def test_none_declared_is_a_note_and_exit_0(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/s.db"
    out = ok(aiosys("slo", "check", "--store", store)).stdout
    assert "no SLOs declared" in out
    assert json.loads(ok(aiosys("slo", "check", "--json", "--store", store)).stdout) == []


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[slo]]\nobjective = "p95_latency"\ntarget = 1', "exactly one of workflow or model"),
        ('[[slo]]\nworkflow = "w"\nobjective = "p99"\ntarget = 1', "objective must be one of"),
        ('[[slo]]\nworkflow = "w"\nobjective = "error_rate"\ntarget = 5', "is a fraction"),
        ('[[slo]]\nmodel = "m"\nobjective = "cost_per_run"\ntarget = 1', "cost_per_call"),
        ('[[slo]]\nworkflow = "w"\nobjective = "error_rate"\ntarget = 0.1\nwindow = "x"', "x"),
        ('[[slo]]\nworkflow = "w"\nobjective = "error_rate"\ntarget = -1', "positive"),
        ('[[slo]]\nworkflow = "w"\nobjective = "error_rate"\ntarget = 0.1\np = 1', "unknown key"),
        ('[[slo]]\nworkflow = "w"\ntarget = 0.1', "objective and target are required"),
        ("slo = 3", "array of tables"),
        ("[[slo]\n", "not valid TOML"),
    ],
)
def test_a_malformed_slo_is_one_error_line_and_exit_2(
    tmp_path: Path, toml: str, message: str
) -> None:
    Path("aiosys.toml").write_text(toml)
    error = reported_error(aiosys("slo", "check", "--store", f"sqlite:///{tmp_path}/s.db"), 2)
    assert message in error


def test_an_slo_naming_what_the_app_does_not_know_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # cliapp
    store = f"sqlite:///{tmp_path}/s.db"
    Path("aiosys.toml").write_text(
        '[[slo]]\nworkflow = "dubble"\nobjective = "error_rate"\ntarget = 0.1'
    )
    error = reported_error(aiosys("slo", "check", "--app", "cliapp:app", "--store", store), 2)
    assert "no workflow 'dubble' in this app" in error


def test_slo_check_on_a_bare_store_refuses_what_it_never_saw(store_url: str) -> None:
    """Without an app, a workflow (model) no run (call) of which the store holds, or a
    tenant it does not know, is a configuration error naming it (exit 2), not "no data"."""
    seed_intake(store_url, [1.0])
    seed_model_calls(store_url, "m1", asyncio.run(clock(store_url)) - 60, [100.0])
    slo = '[[slo]]\n{what} = "{name}"\nobjective = "error_rate"\ntarget = 0.1\n'
    for what, name, message in (
        ("workflow", "intkae", "no workflow 'intkae' in this store"),
        ("model", "m2", "no model 'm2' in this store"),
    ):
        Path("aiosys.toml").write_text(slo.format(what=what, name=name))
        error = reported_error(aiosys("slo", "check", "--store", store_url), 2)
        assert message in error and "aiosys.toml [[slo]] #1" in error
    Path("aiosys.toml").write_text(
        slo.format(what="workflow", name="intake") + slo.format(what="model", name="m1")
    )
    assert "all SLOs hold" in ok(aiosys("slo", "check", "--store", store_url)).stdout
    for tenant, message in (
        ("nosuch", "no tenant 'nosuch' in this store"),
        ("", "Invalid value for '--tenant': tenant is empty"),  # refused as every --tenant is
    ):
        error = reported_error(aiosys("slo", "check", "--tenant", tenant, "--store", store_url), 2)
        assert message in error, error
    ok(aiosys("slo", "check", "--tenant", "acme", "--store", store_url))  # seeded as acme's


def test_app_slo_refuses_a_malformed_declaration() -> None:
    app = aiosys_pkg.App("sqlite:///x.db", models_dir="", preload_models=False)
    with pytest.raises(ConfigError, match="cost_per_run"):
        app.slo(workflow="w", objective="cost_per_call", target=1)
    assert app.slos == []


async def test_an_slo_naming_what_the_app_does_not_know_is_refused(store_url: str) -> None:
    """A typo in an SLO's workflow or model would read as "no data" and pass a CI gate:
    when the app declares workflows (has model cards), an unknown one is a ConfigError."""
    app = aiosys_pkg.App(store_url, models_dir="", preload_models=False, audit=False)

    @app.workflow
    async def intake(ctx: aiosys_pkg.Context) -> int:
        return 1

    app.models.add_card({"id": "m1", "provider": "local", "kind": "chat"})
    await app.open()
    try:
        app.slo(workflow="intkae", objective="p95_latency", target=1.0)
        with pytest.raises(
            ConfigError, match=r"no workflow 'intkae' in this app \(declared: intake"
        ):
            await app.check_slos(toml=None)
        app.slos.clear()
        app.slo(model="m2", objective="p95_latency", target=1.0)
        with pytest.raises(ConfigError, match=r"no model 'm2' in this app's catalog \(cards: m1"):
            await app.check_slos(toml=None)
        app.slos.clear()
        app.slo(workflow="intake", objective="p95_latency", target=1.0)
        app.slo(model="m1", objective="p95_latency", target=1.0)
        assert [r.status for r in await app.check_slos(toml=None)] == ["no data", "no data"]
    finally:
        await app.close()
