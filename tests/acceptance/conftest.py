"""Fixtures of the acceptance tests: real ``aiosys worker`` processes on one store.

The store comes from the ``store_url`` fixture of ``tests/conftest.py`` (a fresh SQLite file
or a fresh PostgreSQL database per test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from workerprocs import Workers


@pytest.fixture
def crash_log(tmp_path: Path) -> Path:
    return tmp_path / "effects.log"


@pytest.fixture
def workers_factory(tmp_path: Path, crash_log: Path) -> Iterator[Callable[..., Workers]]:
    """Make ``Workers`` for a store; every process still alive is killed at the end."""
    pools: list[Workers] = []

    def make(
        store_url: str,
        *,
        concurrency: int = 16,
        lease: float = 1.5,
        env: dict[str, str] | None = None,
        app: str = "crashapp:app",
    ) -> Workers:
        pool = Workers(
            store_url,
            tmp_path,
            concurrency=concurrency,
            lease=lease,
            env={"AIOSYS_CRASH_LOG": str(crash_log), **(env or {})},
            app=app,
        )
        pools.append(pool)
        return pool

    try:
        yield make
    finally:
        for pool in pools:
            pool.close()
