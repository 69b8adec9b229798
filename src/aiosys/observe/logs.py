"""Structured logs: every line aiosys writes carries its run, effect, trace and span.

``ContextFilter`` stamps each record with ``run_id`` and ``seq`` (the effect: inside a step,
the step's own number; in workflow code, the number of the last effect it started), read
from the kernel's context variables, and ``trace_id`` / ``span_id`` (hex, as W3C
``traceparent`` writes them) from the current OpenTelemetry span when there is a valid one.
Fields a record already has (``run_id`` passed as ``extra``, as the ``aiosys.runs`` lines do)
are kept; an ``aiosys.runs`` line about an effect gives its ``effect`` as ``seq``. Missing
ones are None. The ``aiosys.runs`` lines carry their run's ``trace_id`` and ``span_id``
themselves, from ``run_span_ids`` (the kernel's hook, ``oplog.set_span_ids``): a run's trace
id is derived from its id (``traceids.run_trace``), so a line written outside any span (a
run's start, its end, its recovery) still names the trace the run's spans are in.

``JsonFormatter`` writes one JSON object per line: ``ts`` (ISO 8601 UTC, milliseconds),
``level``, ``logger``, ``message``, ``run_id``, ``seq``, ``trace_id``, ``span_id``, then every
``extra`` field of the record, and ``exc`` (the formatted traceback) when there is one.

Who installs them, never over a host application's logging:

- ``configure_cli(level)``: the ``aiosys worker`` and ``aiosys run`` commands (the process is
  theirs): one handler on the root logger to stderr, JSON lines when stderr is not a
  terminal, rich's handler when it is (nothing if the root logger has a handler already).
- ``install_default()``: an ``App`` when it opens, only if the process has configured no
  logging (the root logger has no handler): a WARNING handler on the ``aiosys`` logger, the
  lines Python would print anyway, with their context. It stands down (writes nothing) as
  soon as the host configures the root logger, whose handlers then get the records; a host
  that wants the fields adds ``ContextFilter`` (and ``JsonFormatter``) to its own handler.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from ..errors import InvalidInput
from ..kernel.effects import current_step
from ..kernel.runtime import current_execution
from .traceids import run_trace

#: The fields ``ContextFilter`` sets on every record.
CONTEXT_FIELDS = ("run_id", "seq", "trace_id", "span_id")

# Attributes every LogRecord has: not ``extra`` fields.
# uvicorn's ``color_message`` is its message again with terminal colour codes: not a field.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def context() -> dict[str, Any]:
    """The run, effect, trace and span of the code running now (None where unknown)."""
    run_id: str | None = None
    seq: int | None = None
    step = current_step()
    if step is not None:
        run_id, seq = step.run_id, step.seq
    else:
        ex = current_execution.get()
        if ex is not None:
            run_id, seq = ex.run.id, ex.seq or None
    span = trace.get_current_span().get_span_context()
    valid = span.is_valid
    return {
        "run_id": run_id,
        "seq": seq,
        "trace_id": format(span.trace_id, "032x") if valid else None,
        "span_id": format(span.span_id, "016x") if valid else None,
    }


def run_span_ids(run_id: str, traceparent: str | None) -> dict[str, str]:
    """``trace_id`` (32 hex) and ``span_id`` (16 hex) of a line about run ``run_id`` whose
    trace joined ``traceparent`` (None: its own): the current span's when it is in the
    run's trace (an effect's span, for a retry), else the run span's; empty if
    ``traceparent`` is unreadable. The kernel's ``oplog`` hook: never raises."""
    try:
        ids = run_trace(run_id, traceparent)
    except InvalidInput:
        return {}
    span = trace.get_current_span().get_span_context()
    if span.is_valid and span.trace_id == ids.trace_id:
        trace_id, span_id = span.trace_id, span.span_id
    else:
        trace_id, span_id = ids.trace_id, ids.span_id
    return {"trace_id": format(trace_id, "032x"), "span_id": format(span_id, "016x")}


class ContextFilter(logging.Filter):
    """Sets ``run_id``, ``seq``, ``trace_id`` and ``span_id`` on every record it sees (see the
    module docstring); drops nothing. Put it on a handler: a logger's filters see only the
    records logged on that very logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        found = context()
        own = getattr(record, "run_id", None)
        if own is not None and own != found["run_id"]:
            found["seq"] = None  # a line about another run than the one running here
        effect = getattr(record, "effect", None)
        if getattr(record, "seq", None) is None and isinstance(effect, int):
            found["seq"] = effect  # an aiosys.runs line about one effect
        for key in CONTEXT_FIELDS:
            if getattr(record, key, None) is None:
                setattr(record, key, found[key])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring); values JSON cannot hold are
    written as their ``str()``."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "ts": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            out[key] = getattr(record, key, None)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The message, then ``run=… seq=… trace=…`` for the context fields that are set and that
    the message does not already name (for a terminal)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        tail = []
        run_id = getattr(record, "run_id", None)
        if run_id is not None and f"run={run_id}" not in text:
            tail.append(f"run={run_id}")
        for key, name in (("seq", "seq"), ("trace_id", "trace")):
            value = getattr(record, key, None)
            if value is not None:
                tail.append(f"{name}={value}")
        return f"{text} [{' '.join(tail)}]" if tail else text


def handler_for(stream: TextIO, *, json_lines: bool | None = None) -> logging.Handler:
    """A handler writing to ``stream`` with ``ContextFilter``: JSON lines, or (``json_lines``
    False; None: when ``stream`` is a terminal) rich's handler with ``TextFormatter``."""
    if json_lines is None:
        json_lines = not _isatty(stream)
    handler: logging.Handler
    if json_lines:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
    else:
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(file=stream), show_path=False, markup=False)
        handler.setFormatter(TextFormatter("%(message)s"))
    handler.addFilter(ContextFilter())
    return handler


def configure_cli(
    level: int = logging.INFO, *, stream: TextIO | None = None
) -> logging.Handler | None:
    """The logging of an ``aiosys`` command that owns its process (``worker``, ``run``): the
    root logger at ``level`` with one handler (``handler_for``) to ``stream`` (default
    stderr). Like ``logging.basicConfig``, it does nothing when the root logger has a handler
    already (whoever runs the command configured logging: a host, a test runner). Returns
    the handler it added, or None.

    At INFO and above, the HTTP client libraries' loggers (``QUIET``) are set to WARNING
    (at DEBUG they log as they are): httpx writes a line per request at INFO, which a
    server calling a model per request would format and write on every call, saying
    nothing aiosys's own spans and metrics do not."""
    root = logging.getLogger()
    if root.handlers:
        return None
    handler = handler_for(stream if stream is not None else sys.stderr)
    root.addHandler(handler)
    root.setLevel(level)
    if level > logging.DEBUG:
        for name in QUIET:
            lib = logging.getLogger(name)
            lib.setLevel(max(logging.WARNING, lib.level))
    return handler


#: Loggers of libraries that log a line per HTTP request at INFO (``configure_cli``).
QUIET = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "anthropic")


class _DefaultHandler(logging.Handler):
    """``install_default``'s handler: writes through ``inner`` while the root logger has no
    handler of its own (the host has not configured logging), nothing after."""

    def __init__(self, inner: logging.Handler) -> None:
        super().__init__(logging.WARNING)
        self.inner = inner

    def handle(self, record: logging.LogRecord) -> bool:
        if logging.getLogger().handlers:  # the host configured logging since: its handlers
            return False
        return super().handle(record)

    def emit(self, record: logging.LogRecord) -> None:
        self.inner.handle(record)


def install_default(stream: TextIO | None = None) -> bool:
    """What ``App.open`` calls: when the process has configured no logging (no handler on the
    root logger) and this was not done before, add a WARNING handler (``handler_for``) to the
    ``aiosys`` logger. True when it added one."""
    if logging.getLogger().handlers:
        return False
    lib = logging.getLogger("aiosys")
    if any(isinstance(h, _DefaultHandler) for h in lib.handlers):
        return False
    lib.addHandler(_DefaultHandler(handler_for(stream if stream is not None else sys.stderr)))
    return True


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real file
        return False


__all__ = [
    "CONTEXT_FIELDS",
    "ContextFilter",
    "JsonFormatter",
    "TextFormatter",
    "configure_cli",
    "context",
    "handler_for",
    "install_default",
    "run_span_ids",
]
