"""Rows written straight into a store's database for the stats and SLO tests: runs that
ended at chosen times with chosen latencies, their effects and their model usage rows."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True)
class SeedRun:
    workflow: str
    created_at: float
    started_at: float
    finished_at: float
    status: str = "succeeded"
    tenant: str = "acme"
    attempts: Sequence[int] = (1,)  # one effect per entry, its attempt number
    error: str | None = None  # None, "transient" or "permanent": the last effect's error
    cost: float = 0.0  # one model usage row of the run when positive


RUN_COLS = (
    "id, workflow, version, wf_key, tenant, queue, priority, status, input, created_at, "
    "updated_at, started_at, finished_at"
)
EFFECT_COLS = "run_id, seq, kind, name, status, output, error, attempt, started_at, finished_at"
USAGE_COLS = (
    "at, tenant, workflow, run_id, seq, task, model, deployment, input_tokens, output_tokens, "
    "cost, latency_ms, status, error"
)


def _run_rows(runs: Sequence[SeedRun]) -> tuple[list[tuple[Any, ...]], ...]:
    run_rows, effect_rows, usage_rows = [], [], []
    for r in runs:
        rid = uuid.uuid4().hex
        times: tuple[Any, ...] = (r.created_at, r.finished_at, r.started_at, r.finished_at)
        run_rows.append(
            (
                rid,
                r.workflow,
                "1",
                f"{r.workflow}@1",
                r.tenant,
                "default",
                0,
                r.status,
                "{}",
                *times,
            )
        )
        for seq, attempt in enumerate(r.attempts, start=1):
            last = seq == len(r.attempts)
            error = None
            if last and r.error is not None:
                error = json.dumps(
                    {"type": "x.E", "message": "e", "transient": r.error == "transient"}
                )
            status = "error" if error else "ok"
            ended: tuple[Any, ...] = (r.started_at, r.finished_at)
            effect_rows.append(
                (
                    rid,
                    seq,
                    "step",
                    f"s{seq}",
                    status,
                    None if error else "1",
                    error,
                    attempt,
                    *ended,
                )
            )
        if r.cost > 0:
            tail: tuple[Any, ...] = (1.0, "ok", None)
            usage_rows.append(
                (r.finished_at, r.tenant, r.workflow, rid, 1, None, "m", "d", 1, 1, r.cost, *tail)
            )
    return run_rows, effect_rows, usage_rows


def insert(store_url: str, table: str, cols: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    width = len(rows[0])
    if store_url.startswith("sqlite"):
        marks = ", ".join("?" * width)
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            conn.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
        return
    marks = ", ".join(["%s"] * width)
    with psycopg.connect(store_url, autocommit=True) as pg, pg.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})".encode(), rows)


def seed_runs(store_url: str, runs: Sequence[SeedRun]) -> None:
    run_rows, effect_rows, usage_rows = _run_rows(runs)
    insert(store_url, "runs", RUN_COLS, run_rows)
    insert(store_url, "effects", EFFECT_COLS, effect_rows)
    insert(store_url, "model_usage", USAGE_COLS, usage_rows)


def seed_model_calls(
    store_url: str,
    model: str,
    at: float,
    latencies_ms: Sequence[float],
    *,
    tenant: str = "acme",
    status: str = "ok",
    error: str | None = None,
    cost: float = 0.0,
) -> None:
    """One model_usage row per latency, all at ``at``."""
    rows = [
        (at, tenant, None, None, None, None, model, "d", 10, 5, cost, ms, status, error)
        for ms in latencies_ms
    ]
    insert(store_url, "model_usage", USAGE_COLS, rows)


TASK_COLS = (
    "id, tenant, run_id, seq, workflow, name, role, escalate_to, history, status, decision, "
    "decided_by, decided_at, created_at, updated_at"
)


def seed_reviews(
    store_url: str, workflow: str, at: float, actions: Sequence[str], *, tenant: str = "acme"
) -> None:
    """One human task per action (``approve``, ``edit``, ``reject``), decided at ``at``."""
    rows = []
    for action in actions:
        tid = uuid.uuid4().hex
        decision = {"action": action, "decided_by": "pat", "decided_at": at, "task_id": tid}
        record = json.dumps({**decision, "role": "paralegal"})
        run_id = uuid.uuid4().hex
        task = (tid, tenant, run_id, 1, workflow, "review", "paralegal", "[]", "[]")
        rows.append((*task, "completed", record, "pat", at, at, at))
    insert(store_url, "human_tasks", TASK_COLS, rows)
