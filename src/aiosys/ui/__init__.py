"""The web console: runs, the human task inbox, the model catalog, the audit log, stats and
SLOs, budgets, served as server-rendered pages (Jinja2) made live by htmx, both shipped in
the package (the page loads nothing from elsewhere; no Node is needed to install it).

``mount_console(fastapi_app, app)`` adds it to a FastAPI application (``aiosys server``
serves it at ``/``). A visitor logs in with an API key (a signed session cookie: HttpOnly,
SameSite=Lax; every form carries a CSRF token); without identity configured every visitor
is the local principal, as in the CLI. Each page is a few calls of the public ``App`` API
made as the visitor's principal, so each is scoped to its tenant: another tenant's run or
task is a 404, as it is over ``/v1``.

Pages: ``/runs`` (filters, live status; start a run), ``/runs/{id}`` (summary, cost,
effect timeline with retries and tracebacks, trace waterfall, human tasks; cancel, resume,
signal), ``/tasks`` and ``/tasks/{id}`` (claim, release, approve, reject, edit with a
comment; SLA countdown), ``/models`` and ``/models/{id}`` (model cards), ``/audit``
(records, verify), ``/stats`` (percentiles, cost, failures by class, dead letters, SLOs),
``/budgets``; ``/login`` and ``/logout``.
"""

from __future__ import annotations

from ._console import Console
from ._mount import mount_console

__all__ = ["Console", "mount_console"]
