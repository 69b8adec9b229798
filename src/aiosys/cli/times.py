"""Store timestamps (seconds since the epoch) as the CLI prints them."""

from __future__ import annotations

from datetime import datetime

from ..observe.run_view import iso


def local(t: float | None) -> str:
    """A store timestamp in local time, for people."""
    return "" if t is None else datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def local_ms(t: float | None) -> str:
    """A store timestamp in local time to the millisecond (leases and gaps are short)."""
    return "" if t is None else datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


__all__ = ["iso", "local", "local_ms"]
