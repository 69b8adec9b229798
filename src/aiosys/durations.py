"""Durations and points in time as people write them in settings and on the command line.

A duration is one or more ``<number><unit>`` parts, units ``s``, ``m`` (minutes), ``h``,
``d``, ``w`` (weeks): ``30d``, ``12h``, ``90m``, ``45s``, ``2w``, ``1d12h``, ``1.5h``. A point
in time is ISO 8601 (``2024-05-01``, ``2024-05-01T12:00:00+02:00``); one without a UTC
offset is UTC. Parsed by hand: a regular expression and ``datetime.fromisoformat``.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
#: The longest duration accepted: 100 years (36,525 days). Past that a point in time
#: "that long ago" or "from now" leaves what dates and timestamps can hold (year 1..9999,
#: a platform's time_t), and no retention, key lifetime or stats window is meant.
MAX_SECONDS = 36_525 * 86_400.0


class TooLong(ValueError):
    """A duration longer than ``MAX_SECONDS``, or a point in time no timestamp holds."""


_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
FORMS = "a duration such as 30d, 12h, 90m, 45s, 2w or 1d12h"


def parse_duration(text: str) -> float:
    """The seconds ``text`` spells (``"30d"`` -> 2592000.0). ``ValueError`` naming the
    forms accepted for anything else (a bare number, an unknown unit, a negative sign)."""
    spelled = text.strip().lower()
    pos, total = 0, 0.0
    for m in _PART.finditer(spelled):
        if m.start() != pos:
            break
        total += float(m.group(1)) * UNITS[m.group(2)]
        pos = m.end()
    if not spelled or pos != len(spelled):
        raise ValueError(f"{text!r} is not {FORMS}")
    if total > MAX_SECONDS:
        raise TooLong(f"{text!r} is longer than 100 years, the longest duration accepted")
    return total


def parse_time(text: str) -> float:
    """The epoch seconds of an ISO 8601 date or date/time (UTC when it has no offset).
    ``ValueError`` if it is not one."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date or date/time") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    try:  # in UTC too (year 1 with a positive offset is year 0 there: no date holds it)
        return at.astimezone(UTC).timestamp()
    except (OverflowError, ValueError, OSError):
        raise TooLong(f"{text!r} is out of the range of timestamps") from None


def parse_before(text: str, now: float) -> float:
    """The cutoff ``text`` names, in epoch seconds: a duration ago (``"30d"``: ``now`` minus
    30 days) or an ISO 8601 date/time. ``ValueError`` naming both forms otherwise."""
    try:
        return now - parse_duration(text)
    except TooLong:
        raise
    except ValueError:
        pass
    try:
        return parse_time(text)
    except TooLong:
        raise
    except ValueError:
        raise ValueError(
            f"{text!r} is neither {FORMS} (meaning that long ago) nor an ISO 8601 date or "
            "date/time such as 2024-05-01 or 2024-05-01T12:00:00Z"
        ) from None


def seconds(value: float | timedelta | str, what: str) -> float:
    """A positive length of time given as seconds, a ``timedelta`` or a duration string.
    ``ValueError`` saying ``what`` it is for when it is none of these, or not positive."""
    if isinstance(value, timedelta):
        n = value.total_seconds()
    elif isinstance(value, str):
        n = parse_duration(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        n = float(value)
    else:
        raise ValueError(
            f"{what} must be seconds, a timedelta or {FORMS}, not {type(value).__name__}"
        )
    if not math.isfinite(n) or n <= 0:
        raise ValueError(f"{what} must be a positive length of time, not {value!r}")
    return n


def utc_iso(t: float) -> str:
    """Epoch seconds as ISO 8601 in UTC (``2026-11-30T23:14:32+00:00``), for messages."""
    return datetime.fromtimestamp(t, UTC).isoformat()
