"""A run's trace and span ids, its effects' span ids, and W3C ``traceparent`` text.

A run's span id is derived from its id (the first 8 bytes after 16 of SHA-256 of it), so
every execution of the run, on any worker, after any crash, park or move, makes its effect
spans children of the same run span without reading anything. Its trace id is the one of
the span it joined (``RunRow.traceparent``: a caller's, a parent run's ``child_start``), else
derived from its id too (the first 16 bytes). An effect's span id is derived from the run's
id and the effect's number (``effect_span_id``): the span of effect #n is the same whichever
execution records it, and is read back from the effect's record. A model call's attempts'
span ids are derived from its span id and their order (``attempt_span_id``) the same way.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from opentelemetry.trace import SpanContext, TraceFlags

from ..errors import InvalidInput

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
SAMPLED = TraceFlags(TraceFlags.SAMPLED)


@dataclass(frozen=True, slots=True)
class RunTrace:
    """``trace_id`` (128 bits) and ``span_id`` (64 bits) of a run's span; ``parent_id`` the
    span it joined, if any."""

    trace_id: int
    span_id: int
    parent_id: int | None

    @property
    def context(self) -> SpanContext:
        """The run span's context: the parent of its effects' spans."""
        return SpanContext(self.trace_id, self.span_id, is_remote=False, trace_flags=SAMPLED)


@lru_cache(maxsize=4096)
def run_trace(run_id: str, traceparent: str | None) -> RunTrace:
    """The ids of run ``run_id``'s span (see the module docstring)."""
    digest = hashlib.sha256(run_id.encode()).digest()
    span_id = int.from_bytes(digest[16:24]) or 1
    if traceparent is not None:
        parent = parse_traceparent(traceparent)
        return RunTrace(parent.trace_id, span_id, parent.span_id)
    return RunTrace(int.from_bytes(digest[:16]) or 1, span_id, None)


def effect_span_id(run_id: str, seq: int) -> int:
    """The span id (64 bits, never 0) of effect ``seq`` of run ``run_id``: SplitMix64's
    mix of the run's key (8 bytes of SHA-256 of its id, after the run span's) plus ``seq``
    times the golden ratio: distinct for the effects of a run, cheap on the hot path."""
    return _mix(_run_key(run_id) + seq * _GOLDEN) or 1


def attempt_span_id(run_id: str, seq: int, index: int) -> int:
    """The span id (64 bits, never 0) of attempt ``index`` (0: the first) of model call
    ``seq`` of run ``run_id``: the same mix of the call's span id plus ``index + 1`` times
    the golden ratio, so it is the same on every read and export of the call's record."""
    return _mix(effect_span_id(run_id, seq) + (index + 1) * _GOLDEN) or 1


_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(z: int) -> int:
    """SplitMix64's finalizer of ``z`` (mod 2**64): a bijection of 64-bit integers."""
    z &= _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


@lru_cache(maxsize=4096)
def _run_key(run_id: str) -> int:
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[24:32])


def parse_traceparent(text: str) -> SpanContext:
    """The span context a W3C ``traceparent`` header names (``00-<32 hex>-<16 hex>-<2 hex>``);
    ``InvalidInput`` when it is not one (all-zero ids, version ``ff``, upper case, ...)."""
    m = _TRACEPARENT.match(text.strip()) if isinstance(text, str) else None
    if m is None or m.group(1) == "ff":
        raise InvalidInput(
            f"traceparent {text!r} is not a W3C traceparent (00-<32 hex digits>-<16 hex "
            "digits>-<2 hex digits>, lower case)"
        )
    trace_id, span_id = int(m.group(2), 16), int(m.group(3), 16)
    if trace_id == 0 or span_id == 0:
        raise InvalidInput(f"traceparent {text!r} has an all-zero trace or span id")
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(m[4], 16)))


def format_traceparent(ctx: SpanContext) -> str:
    """The W3C ``traceparent`` of a span context."""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
