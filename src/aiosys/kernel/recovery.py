"""Recoveries: the log line that says one happened, and the cap on how many a run gets.

A claim that takes a run over from a worker whose lease expired logs one ``run.recovered``
line (WARNING, logger ``aiosys.runs``) naming the worker that lost it and when its lease
expired. The cap: a run whose workers keep dying under it ends ``dead``, not replayed.

A claim of a run whose lease expired (its worker died, was OOM-killed or hung) counts as a
recovery (``runs.recoveries``, counted by the claim itself). The check is made when a run is
claimed, before any of its code runs: a run over its workflow's ``max_recoveries`` is ended
``dead`` with ``MaxRecoveriesExceeded`` instead, so a step that kills its process is not
executed once more. ``resume`` resets the count.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..errors import MaxRecoveriesExceeded
from ..store.base import DEAD, Finish, RunRow
from . import serde
from .oplog import run_event

if TYPE_CHECKING:
    from .app import WorkflowSpec


def over_cap(row: RunRow, spec: WorkflowSpec, owner: str) -> Finish | None:
    """The end to write instead of executing ``row``, if it was recovered too often."""
    cap = spec.max_recoveries
    if cap is None or row.recoveries <= cap:
        return None
    error = MaxRecoveriesExceeded(
        f"run {row.id} of workflow {row.workflow!r} was recovered {row.recoveries} times "
        f"(each time its worker died or stopped renewing its lease while running it), more "
        f"than its max_recoveries of {cap}; it is not executed again. A step that kills its "
        "process (out of memory, a native crash, os._exit) is the usual cause: fix it, then "
        f"`aiosys runs resume {row.id}`, or raise max_recoveries in @app.workflow"
    )
    return Finish(
        owner=owner,
        run_id=row.id,
        status=DEAD,
        error=serde.dump_error(error),
        parent_id=row.parent_id,
        epoch=row.epoch,
    )


def log_recovered(row: RunRow, worker: str) -> None:
    """Log ``run.recovered`` for a run ``worker`` just claimed from a worker whose lease had
    expired (``row.recovered_from``): ``lost_by``, ``lease_expired_at`` (ISO 8601, UTC),
    ``recoveries`` (this one included) and ``claims``."""
    expired = row.lease_expired_at
    run_event(
        "recovered",
        row.id,
        row.wf_key,
        worker,
        logging.WARNING,
        traceparent=row.traceparent,
        lost_by=row.recovered_from,
        lease_expired_at=None
        if expired is None
        else datetime.fromtimestamp(expired, UTC).isoformat(),
        recoveries=row.recoveries,
        claims=row.claims,
    )
