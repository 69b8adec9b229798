"""``aiosys metrics`` against what two real ``aiosys worker`` processes did, on SQLite and on
PostgreSQL: its output parses with prometheus-client's own parser and its counts are the
runs, effects and model calls the workers recorded (the metrics are computed from the store,
so no worker's count is lost). And the workers' logs: JSON lines (stderr is not a terminal),
each line about a run carrying its run_id, each line about an effect its seq."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import metricsapp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from workerprocs import poll_until, spawn_worker

from aiosys.store.base import TERMINAL

HERE = Path(__file__).parent
RUNS = 40  # x = 0..39: 20 odd (one transient failure each), 8 multiples of 5 (dead)
ACME = range(30, 40)  # started in tenant acme, the rest in default


def metrics(store_url: str, *args: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``aiosys metrics`` run as a command: every sample, by name and sorted labels."""
    src = str(HERE.parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, str(HERE)])}
    command = [sys.executable, "-m", "aiosys.cli", "metrics", "--app", "metricsapp:app"]
    done = subprocess.run(
        [*command, "--store", store_url, *args],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    samples = {}
    for family in text_string_to_metric_families(done.stdout):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, metric: str, /, **labels: str) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]


def total(samples: dict, metric: str, /, **labels: str) -> float:
    """The sum of ``metric`` over every series whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == metric and want <= set(ls))


@pytest.mark.timeout(240)
async def test_metrics_count_what_two_worker_processes_did(store_url, tmp_path):
    out = tmp_path / "workers.log"
    app = metricsapp.app
    app.use_store(store_url)
    await app.open()
    workers = [spawn_worker("metricsapp:app", store_url, out, concurrency=4) for _ in range(2)]
    try:

        async def both_registered() -> bool:
            return len(await app.store.live_workers()) == 2

        await poll_until(both_registered, 60, "both workers to register")
        runs = [
            await app.start("mix", {"x": x}, tenant="acme" if x in ACME else None)
            for x in range(RUNS)
        ]

        async def all_ended() -> bool:
            assert all(w.poll() is None for w in workers), out.read_text()
            return all([(await r.row()).status in TERMINAL for r in runs])

        await poll_until(all_ended, 180, "every run to end")

        rows = [await r.row() for r in runs]
        seen = await asyncio.to_thread(metrics, store_url)
        acme_only = await asyncio.to_thread(metrics, store_url, "--tenant", "acme")
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(timeout=60) == 0, out.read_text()
        effects = [e for r in rows for e in await app.store.list_effects(r.id)]
        usage = [u for t in ("default", "acme") for u in await app.models.usage(tenant=t)]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
        await app.close()

    # Both workers did part of the work: the counts below are of every worker.
    assert len({e.worker for e in effects}) == 2
    dead = {x for x in range(RUNS) if x % 5 == 0}
    assert Counter(r.status for r in rows) == {"succeeded": RUNS - len(dead), "dead": len(dead)}

    per_tenant = Counter((r.tenant, r.status) for r in rows)
    for (tenant, status), n in per_tenant.items():
        assert (
            value(seen, "aiosys_runs_ended_total", workflow="mix", tenant=tenant, status=status)
            == n
        )
    for tenant in ("default", "acme"):
        n = sum(1 for r in rows if r.tenant == tenant)
        assert value(seen, "aiosys_runs_created_total", workflow="mix", tenant=tenant) == n
        assert value(seen, "aiosys_runs_started_total", workflow="mix", tenant=tenant) == n
    assert total(seen, "aiosys_dead_letter_runs", status="dead") == len(dead)
    assert total(seen, "aiosys_runs") == 0  # nothing left pending, running or waiting
    assert value(seen, "aiosys_run_duration_seconds_count", workflow="mix") == RUNS
    assert value(seen, "aiosys_run_duration_seconds_bucket", workflow="mix", le="+Inf") == RUNS
    assert value(seen, "aiosys_queue_wait_seconds_count", queue="default") == RUNS
    assert value(seen, "aiosys_workers") == 2

    # Effects by outcome and error class, as recorded.
    odd = sum(1 for x in range(RUNS) if x % 2)
    ok = dict(outcome="ok", error_class="")
    assert value(seen, "aiosys_effects_total", kind="step", name="flaky", **ok) == RUNS
    assert value(seen, "aiosys_effects_total", kind="model", name="call:m", **ok) == RUNS
    permanent = dict(outcome="error", error_class="permanent")
    assert value(seen, "aiosys_effects_total", kind="step", name="refuse", **permanent) == len(dead)
    assert value(seen, "aiosys_effect_retries_total", kind="step", name="flaky") == odd
    ended = Counter(e.kind for e in effects if e.status in ("ok", "error"))
    for kind, n in ended.items():
        assert value(seen, "aiosys_effect_duration_seconds_count", kind=kind) == n

    # Model calls, tokens and cost per model and tenant, as metered.
    for tenant in ("default", "acme"):
        n = sum(1 for r in rows if r.tenant == tenant)
        assert value(seen, "aiosys_model_calls_total", model="m", tenant=tenant, status="ok") == n
        cost = value(seen, "aiosys_model_cost_total", model="m", tenant=tenant)
        assert cost == pytest.approx(n * metricsapp.PER_CALL)
    tokens = sum(u["input_tokens"] for u in usage)
    assert total(seen, "aiosys_model_tokens_total", model="m", type="input") == tokens
    assert value(seen, "aiosys_model_cache_hit_ratio", model="m") == 0.0
    assert value(seen, "aiosys_model_call_duration_seconds_count", model="m") == RUNS
    budget = dict(scope="tenant", key="default", period="total", tenant="default", hard="true")
    spent_default = (RUNS - len(ACME)) * metricsapp.PER_CALL
    assert value(seen, "aiosys_budget_used", **budget) == pytest.approx(spent_default)
    assert value(seen, "aiosys_budget_limit", **budget) == metricsapp.LIMIT

    # --tenant acme: acme's series only, its counts unchanged; no workers gauge.
    assert {dict(ls).get("tenant") for (_, ls) in acme_only} <= {"acme", None}
    assert value(acme_only, "aiosys_runs_created_total", workflow="mix", tenant="acme") == len(ACME)
    assert value(acme_only, "aiosys_run_duration_seconds_count", workflow="mix") == len(ACME)
    assert ("aiosys_workers", ()) not in acme_only

    # The workers' stderr: every line is a JSON object; lines about a run name it, lines
    # written inside an effect (the app's own logger, in a step) name the effect too.
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    ids = {r.id for r in rows}
    about_runs = [line for line in lines if str(line.get("event", "")).startswith("run.")]
    assert {line["run_id"] for line in about_runs} == ids
    assert {line["seq"] for line in about_runs if line["event"] == "run.retry"} == {1}
    in_steps = [line for line in lines if line["logger"] == "metricsapp"]
    assert len(in_steps) == RUNS + odd  # one per attempt
    assert {line["run_id"] for line in in_steps} == ids
    assert {line["seq"] for line in in_steps} == {1}
    assert all(set(line) >= {"ts", "level", "message", "trace_id", "span_id"} for line in lines)
