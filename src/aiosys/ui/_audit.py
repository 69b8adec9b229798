"""The audit log: the visitor's records of a window, newest first, and a verify button.

Records are read as an extract (``app.audit.export``): a principal that is not the local
one needs the role admin and gets its own tenant's records only (another tenant's appear as
stubs, counted, never shown); the local principal gets every tenant's. Verifying checks the
whole log for the local principal (``app.audit.verify``); for any other, the extract of the
window against the operator's public key (``audit_export.verify_extract``): its records are
intact and chained between signed checkpoints, which is what a tenant can be shown.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ConfigError
from ..governance.audit_export import verify_extract
from ..governance.audit_verify import Report
from ..kernel import current_principal
from ..observe.stats import window_start
from ._console import Console, one_of
from ._runs import field

WINDOWS = ("1h", "24h", "7d", "30d", "365d")
SHOWN = 500  # records on the page at most (the newest)


async def extract(console: Console, since: str) -> str:
    """The visitor's extract of the records from ``since`` back until now, as text."""
    app = console.app
    start = window_start(one_of(since, WINDOWS, "the window"), app.store.clock())
    out = io.StringIO()
    await app.audit.export(out, since=dt.datetime.fromtimestamp(start, dt.UTC))
    return out.getvalue()


def records(text: str) -> tuple[list[dict[str, Any]], int]:
    """The extract's records, newest first (each its body's fields, with ``seq``, ``tenant``
    and ``at`` in epoch seconds), and how many stubs (others' records) it holds."""
    found, stubs = [], 0
    for line in text.splitlines()[1:]:
        item = json.loads(line)
        if item.get("type") == "stub":
            stubs += 1
        elif item.get("type") == "record":
            body = json.loads(item["body"])
            found.append(
                {**body, "seq": item["seq"], "tenant": item["tenant"], "at": item["at"] / 1e6}
            )
    found.reverse()
    return found, stubs


def router(console: Console) -> APIRouter:
    r = APIRouter(route_class=console.route_class())
    app = console.app

    @r.get("/audit", name="audit")
    async def audit(request: Request) -> Response:
        since = request.query_params.get("since", "24h")
        problem = None
        try:
            found, stubs = records(await extract(console, since))
        except ConfigError as exc:  # no audit key yet: the first checkpoint makes one
            found, stubs, problem = [], 0, str(exc)
        return console.page(
            request,
            "audit.html",
            title="Audit log",
            records=found[:SHOWN],
            total=len(found),
            stubs=stubs,
            since=since,
            windows=WINDOWS,
            whole=current_principal().local,
            problem=problem,
        )

    @r.post("/audit/verify", name="verify_audit")
    async def verify(request: Request) -> Response:
        since = one_of(field(await request.form(), "since") or "24h", WINDOWS, "the window")
        report: Report
        if current_principal().local:
            report = await app.audit.verify()
        else:
            text = await extract(console, since)
            report = verify_extract(text.splitlines(), app.audit.verify_key())
        kind = "ok" if report.ok else "error"
        return console.back(request, f"/audit?since={since}", kind, report.line())

    return r


__all__ = ["records", "router"]
