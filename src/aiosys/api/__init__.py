"""The HTTP API (``aiosys server``): ``/v1`` over the Python API, FastAPI on uvicorn.

The server adds no logic of its own: each request becomes one call of ``aiosys.App`` as the
caller's principal (``_auth``), through the same checks, policies, audit and traces; its
answer is a pydantic model (``_schemas``), its error a problem (``_problems``). Modules:
``_runs`` (workflows and runs), ``_events`` (events that start runs), ``_tasks`` (the human
task inbox), ``_reads`` (models, stats, audit), ``_probes`` (``/healthz``, ``/readyz``,
``/metrics``), ``server`` (uvicorn, with the embedded worker's drain on shutdown).
"""

from __future__ import annotations

from ._app import create_api
from ._problems import Problem

__all__ = ["Problem", "create_api"]
