"""The recovery cap: a run whose workers keep dying under it ends ``dead``, not replayed.

A claim of a run whose lease expired (its worker died, was OOM-killed or hung) counts as a
recovery (``runs.recoveries``, counted by the claim itself). The check is made when a run is
claimed, before any of its code runs: a run over its workflow's ``max_recoveries`` is ended
``dead`` with ``MaxRecoveriesExceeded`` instead, so a step that kills its process is not
executed once more. ``resume`` resets the count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import MaxRecoveriesExceeded
from ..store.base import DEAD, Finish, RunRow
from . import serde

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
