"""Helpers of the kernel's behavioural suite (``test_kernel_*.py``).

Every kernel test takes ``store_url`` (tests/conftest.py), so it runs once on a fresh SQLite
file and once on a fresh PostgreSQL database. Tests wait on conditions (a status, a result,
an event), never on the clock; these helpers are the waiting.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from aiosys import App
from aiosys.store.base import RunRow

WaitStatus = Callable[..., Awaitable[RunRow]]


async def _wait_status(app: App, run_id: str, *statuses: str, timeout: float = 10.0) -> RunRow:
    """Poll the store until the run is in one of ``statuses``; its row."""
    row = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                row = await app.get_run(run_id)
                if row.status in statuses:
                    return row
                await asyncio.sleep(0.01)
    except TimeoutError:
        seen = None if row is None else row.status
        raise AssertionError(f"run {run_id} never reached {statuses} (last seen: {seen})") from None


@pytest.fixture
def wait_status() -> WaitStatus:
    """``await wait_status(app, run_id, "waiting")``: the run's row once it has that status."""
    return _wait_status


@pytest.fixture
def error_of() -> Callable[[RunRow], dict[str, Any]]:
    """The decoded error record of a run."""

    def decode(row: RunRow) -> dict[str, Any]:
        assert row.error is not None, f"run {row.id} ({row.status}) recorded no error"
        record: dict[str, Any] = json.loads(row.error)
        return record

    return decode


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - a condition on the kernel's own state
            await asyncio.sleep(0.01)


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[None]]:
    """``await wait_until(lambda: ...)``: poll an in-process condition, with a time guard."""
    return until


def forget_migration(store_url: str, version: int) -> None:
    """Make the store look one migration behind this code (as a newer process sees it)."""
    if store_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            conn.execute("DELETE FROM aiosys_schema WHERE version = ?", (version,))
        return
    import psycopg

    with psycopg.connect(store_url, autocommit=True) as conn:
        conn.execute("DELETE FROM aiosys_schema WHERE version = %s", (version,))


SHIPPED_POLICIES = Path(__file__).resolve().parents[2] / "examples" / "policies"

#: A policy beside the shipped ones: runs of the workflow ``hold`` may not be cancelled.
HOLD_POLICY = (
    '@id("hold-runs-are-not-cancelled")\n'
    'forbid(principal, action == Action::"cancel_run", resource is Run)\n'
    'when { resource has workflow && resource.workflow == "hold" };\n'
)


def shipped_policies(tmp_path: Path, **files: str) -> Path:
    """A copy of the shipped example policies in ``tmp_path/policies``, with ``files``
    (name without ``.cedar`` -> text) beside them."""
    policies = tmp_path / "policies"
    shutil.copytree(SHIPPED_POLICIES, policies)
    for name, text in files.items():
        (policies / f"{name}.cedar").write_text(text)
    return policies
