"""Store timestamps (seconds since the epoch) as the CLI prints them."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(t: float | None) -> str | None:
    """A store timestamp (epoch seconds) as ISO 8601 in UTC, for JSON."""
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


def local(t: float | None) -> str:
    """A store timestamp in local time, for people."""
    return "" if t is None else datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def local_ms(t: float | None) -> str:
    """A store timestamp in local time to the millisecond (leases and gaps are short)."""
    return "" if t is None else datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
