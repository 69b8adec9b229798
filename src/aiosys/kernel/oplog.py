"""The operator's log: one line per thing that happens to a run in a worker.

Logger ``aiosys.runs``. Each line is ``run.<event>`` followed by ``key=value`` pairs (values
with spaces are quoted), and the same fields are on the record as ``extra`` attributes
(``event``, ``run_id``, ``workflow``, ``worker`` and the event's own), so a JSON formatter
gets them as fields without parsing the text::

    run.started run=3f2c... workflow=intake@1 worker=w-host-81 claims=1 recoveries=0
    run.retry run=3f2c... workflow=intake@1 worker=w-host-81 effect=2 effect_name=fetch attempt=1 \
delay_s=0.5 error="TransientError: 503"
    run.finished run=3f2c... workflow=intake@1 worker=w-host-81 status=succeeded duration_ms=812
    run.failed run=3f2c... workflow=intake@1 worker=w-host-81 status=dead error="..."
    run.recovered run=3f2c... workflow=intake@1 worker=w-host-81 lost_by=w-host-12 \
lease_expired_at=2025-01-07T10:31:02.512+00:00 recoveries=1 claims=2
    run.unservable run=9a1e... workflow=intake@1 worker=w-host-81 status=pending \
queue=default claimable_s=42.0 served=intake@2 reason="no live worker serves intake@1 ..."

Events: ``started`` (an execution begins after a claim; ``recoveries`` counts the claims
that took the run over from a worker whose lease expired: WARNING when it is not 0),
``retry`` (an effect failed transiently and is tried again), ``finished`` (succeeded),
``failed`` (ended failed, dead or cancelled: WARNING), ``recovered`` (a claim took the run
over from the worker ``lost_by`` whose lease expired: WARNING; ``recovery.log_recovered``),
``unservable`` (a run no live worker serves: WARNING, once per run per worker process;
``presence.Presence``). Field names avoid the ``LogRecord``
attributes (``name``, ``message``, ...), which ``extra`` may not overwrite.

Each line also carries ``trace_id`` and ``span_id`` (hex) of the run's trace: the kernel
knows no tracing, so the observe layer installs ``set_span_ids``'s hook (an ``App`` does
when it opens: ``aiosys.observe.logs.run_span_ids``), which derives them from the run's id
and ``traceparent``: the current span's when it is one of the run's (a retry's effect), else
the run span's. Without the hook the lines carry what the handler's filter finds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .error_records import safe_str

log = logging.getLogger("aiosys.runs")

#: ``(run_id, traceparent) -> {"trace_id": hex, "span_id": hex}`` (empty when unknown); it
#: must not raise. Installed by the observe layer (``set_span_ids``).
SpanIds = Callable[[str, str | None], Mapping[str, str]]
_span_ids: SpanIds | None = None


def set_span_ids(hook: SpanIds | None) -> None:
    """Install the hook that gives the lines their run's ``trace_id`` and ``span_id``
    (None: none). The observe layer's, ``aiosys.observe.logs.run_span_ids``, is installed
    by ``App.open``; installing it again changes nothing."""
    global _span_ids
    _span_ids = hook


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def run_event(
    event: str,
    run_id: str,
    workflow: str,
    worker: str,
    level: int = logging.INFO,
    *,
    traceparent: str | None = None,
    **fields: Any,
) -> None:
    """Log ``run.<event>`` for one run with ``fields`` (None values are left out);
    ``traceparent`` the run's (``RunRow.traceparent``), for its trace id."""
    if not log.isEnabledFor(level):
        return
    fields = {k: v for k, v in fields.items() if v is not None}
    pairs = " ".join(f"{k}={_text(v)}" for k, v in fields.items())
    head = f"run.{event} run={run_id} workflow={_text(workflow)} worker={_text(worker)}"
    extra = {"event": f"run.{event}", "run_id": run_id, "workflow": workflow, "worker": worker}
    hook = _span_ids
    if hook is not None:
        extra.update(hook(run_id, traceparent))
    log.log(level, f"{head} {pairs}".rstrip(), extra={**extra, **fields})


def exc_text(exc: BaseException) -> str:
    """``Type: message`` of a live error; an error whose ``str()`` raises (or returns no
    string) is ``<unprintable Type>``, as in its record: logging never raises for it."""
    return f"{type(exc).__name__}: {safe_str(exc)}"


def error_text(error: str | None) -> str | None:
    """``Type: message`` of a recorded error (a run's or an effect's ``error`` column)."""
    if error is None:
        return None
    try:
        rec = json.loads(error)
    except json.JSONDecodeError:
        return error
    if not isinstance(rec, dict):
        return str(rec)
    kind = str(rec.get("type", "")).rpartition(".")[2]
    return f"{kind}: {rec.get('message', '')}" if kind else str(rec.get("message", ""))
