"""Helpers of the kernel's behavioural suite (``test_kernel_*.py``).

Every kernel test takes ``store_url`` (tests/conftest.py), so it runs once on a fresh SQLite
file and once on a fresh PostgreSQL database. Tests wait on conditions (a status, a result,
an event), never on the clock; these helpers are the waiting.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
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
