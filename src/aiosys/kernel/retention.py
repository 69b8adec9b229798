"""Retention: a worker's background loop that prunes runs ended longer ago than a setting.

The setting is ``App(retention=...)`` (seconds, a ``timedelta`` or a duration such as
``"30d"``), else ``retention = "30d"`` in ./aiosys.toml (read when the worker starts, as
``store`` is read when the store opens), else none: runs are kept forever. With it, every
worker of the app prunes (``Store.prune``) ``FIRST`` seconds after it starts and then every
``EVERY`` seconds: the runs that ended more than ``retention`` ago, by the store's clock,
with their rows. Several workers pruning one PostgreSQL store at once is safe
(``store/prune.py``): they queue on the runs' row locks and none deletes anything twice. A
pass that fails (the store is down) is logged and tried again at the next one.
"""

from __future__ import annotations

import asyncio
import logging
import tomllib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from ..durations import seconds
from ..errors import ConfigError
from ..store.base import PruneReport, Store

log = logging.getLogger("aiosys.retention")

EVERY = 300.0  # seconds between two passes of a worker
FIRST = 60.0  # seconds from a worker's start to its first pass
PASS_LIMIT = 10_000  # root runs per pass; a pass that reaches it is followed by another at once
# Root runs per transaction: smaller than a prune's default, as a worker prunes beside its runs
# (SQLite: a batch holds the file's write lock and this process's event loop; 200 runs of 10
# effects each take about 50 ms here, 1,000 about 210 ms: bench/prune.py).
BATCH = 200

Retention = float | timedelta | str


def retention_seconds(value: Retention, where: str = "retention") -> float:
    """Seconds of a retention setting; ``ConfigError`` naming ``where`` if it is not a
    positive length of time."""
    try:
        return seconds(value, where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def configured_retention(given: float | None, toml: Path = Path("aiosys.toml")) -> float | None:
    """The retention in force: ``given`` (the app's, in seconds), else ``retention`` in
    ``toml``, else None (keep forever). ``ConfigError`` for a file that is not TOML or a
    value that is not a duration."""
    if given is not None or not toml.is_file():
        return given
    try:
        with toml.open("rb") as f:
            value = tomllib.load(f).get("retention")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{toml} is not valid TOML: {exc}") from None
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ConfigError(f'retention in {toml} must be a duration such as "30d", not {value!r}')
    return retention_seconds(value, f"retention in {toml}")


class Pruner:
    """Prunes ``store`` of runs that ended more than ``keep`` seconds ago: now (``once``),
    or in a loop (``loop``), ``batch`` trees per transaction. ``clock`` is the store's unless
    given (a test moves its own); ``passes`` counts the passes done (failed ones too),
    ``last`` is the report of the latest that succeeded."""

    def __init__(
        self,
        store: Store,
        keep: float,
        *,
        every: float = EVERY,
        first: float = FIRST,
        limit: int = PASS_LIMIT,
        batch: int = BATCH,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.keep = keep
        self.every = every
        self.first = first
        self.limit = limit
        self.batch = batch
        self.clock = clock or store.clock
        self.passes = 0
        self.last: PruneReport | None = None
        self._kick = asyncio.Event()

    def kick(self) -> None:
        """Prune now rather than at the next period."""
        self._kick.set()

    async def once(self) -> PruneReport:
        """One pass: up to ``limit`` trees of runs ended before now minus ``keep``."""
        cutoff = self.clock() - self.keep
        report = await self.store.prune(cutoff, limit=self.limit, batch=self.batch)
        self.last = report
        if report.runs or report.reservations:
            log.info(
                "retention: pruned %d runs that ended more than %gs ago (%s)",
                report.runs,
                self.keep,
                ", ".join(f"{k}={n}" for k, n in report.counts().items() if k != "runs"),
            )
        return report

    async def loop(self) -> None:
        """Pass after pass, until cancelled (the worker's stop): the first ``first``
        seconds after the start (a short-lived process, ``aiosys run``, never prunes), then
        every ``every`` seconds, at once after a pass that reached ``limit``, and whenever
        kicked."""
        delay = self.first
        while True:
            try:
                async with asyncio.timeout(delay):
                    await self._kick.wait()
            except TimeoutError:
                pass
            self._kick.clear()
            delay = self.every
            try:
                if (await self.once()).roots >= self.limit:
                    delay = 0.0  # a backlog: go on, letting the worker's loops run between
            except Exception as exc:  # the store failed: the next pass tries again
                log.warning("retention: pruning failed (%s); trying again in %gs", exc, self.every)
            self.passes += 1
