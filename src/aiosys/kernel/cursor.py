"""Cursors of run listings: where the next page of ``App.list_runs`` starts.

A cursor is the position of the last run of a page in the listing's order (``created_at``,
then ``id``, both descending), written as URL-safe base64 of JSON ``[created_at, id]``: opaque
to callers, readable by anyone who decodes it (it holds nothing the page did not show).
Keyset pagination: runs started while a caller pages neither shift nor repeat a page.
"""

from __future__ import annotations

import base64
import binascii
import json
import math

from ..errors import InvalidInput
from ..store.base import RunRow


def run_cursor(row: RunRow) -> str:
    """The cursor of the page that follows ``row`` (the last run of a page)."""
    text = json.dumps([row.created_at, row.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def parse_run_cursor(cursor: str) -> tuple[float, str]:
    """The ``(created_at, id)`` a cursor names; ``InvalidInput`` if it is not one that
    ``run_cursor`` wrote."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, run_id = json.loads(raw)
        if isinstance(at, bool) or not isinstance(at, int | float) or not isinstance(run_id, str):
            raise ValueError(cursor)
        if not math.isfinite(at):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            f"malformed cursor {cursor[:40]!r}: pass the next_cursor of the page before, "
            "as it was given"
        ) from None
    return float(at), run_id


__all__ = ["parse_run_cursor", "run_cursor"]
