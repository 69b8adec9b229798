"""Lineage: for every effect's output, what produced it; for a model version, which runs used it.

On by default (``LineageSettings``). Each effect a run makes keeps, in its own record (the
same write: ``lineage_record``), the content hashes of its inputs (``lineage_hash``: SHA-256
of RFC 8785 JSON) and the policy decisions made for it; a model call's record already holds
the model card's id and version and the task contract's version (the model plane's), and
for a call that reads a document file (an OCR scan) the SHA-256 of its bytes; a human
task's output is the person's decision. Reading it back (``app.lineage``):

- ``show(run_id)``: the run's ``RunLineage`` (``lineage_graph``): its input's and result's
  hashes, each effect with its inputs' and output's hashes, model@version, task@version,
  the document file it read, policies, human decision, and where each input came from;
  child runs under their start.
- ``runs(model="X@Y")``: the runs whose model calls were answered by card X version Y (or
  any version of X), newest first: a recall when a model turns out bad. It reads the
  effects' records through an index on the ``deployment`` their model record names (both
  stores, migration 0022): no write of its own on the hot path, and runs recorded before
  lineage existed, or with lineage off, are found too.
- ``openlineage(run_id)``: the run and its effects as OpenLineage ``RunEvent`` objects
  (``lineage_openlineage``), for Marquez or any OpenLineage consumer.

Every read is scoped like the App's: ``show`` and ``openlineage`` read a run as ``get_run``
does (``read_run``; a run of another tenant is ``RunNotFound``), ``runs`` lists as
``list_runs`` does (a non-local principal sees its own tenant's only).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..durations import parse_before
from ..errors import ConfigError, InvalidInput
from ..kernel.gate import Gate
from .lineage_graph import RunLineage, build
from .lineage_record import Inputs, Recorder

if TYPE_CHECKING:
    from openlineage.client.event_v2 import RunEvent

    from ..kernel import App
    from ..store.base import RunRow

_TRUE, _FALSE = {"1", "true", "on", "yes"}, {"0", "false", "off", "no"}
#: How deep ``show`` follows child runs, and how many effects it reads at most in all.
MAX_DEPTH = 8
MAX_EFFECTS = 10_000
DEFAULT_LIMIT = 50


@dataclass(frozen=True, slots=True)
class LineageSettings:
    """``enabled``: record lineage with every effect (on by default). ``resolve`` takes it
    from the argument, else ``AIOSYS_LINEAGE`` (on/off), else ``lineage`` in ./aiosys.toml
    (``lineage = false``, or ``enabled`` under a ``[lineage]`` table), else the default. A
    value that is not on/off is a ``ConfigError``."""

    enabled: bool = True

    @classmethod
    def resolve(cls, enabled: bool | None = None) -> LineageSettings:
        value: Any = enabled
        if value is None:
            value = os.environ.get("AIOSYS_LINEAGE") or None
        if value is None:
            value = _toml_lineage()
        if value is None:
            return cls()
        if isinstance(value, bool):
            return cls(enabled=value)
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return cls(enabled=value.lower() in _TRUE)
        raise ConfigError(f"lineage must be on or off, not {value!r}")


def _toml_lineage() -> Any:
    path = Path("aiosys.toml")
    if not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            value = tomllib.load(f).get("lineage")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"aiosys.toml is not valid TOML: {exc}") from None
    if isinstance(value, dict):
        return value.get("enabled")
    return value


class Lineage:
    """The lineage of one app: ``app.lineage`` (see the module docstring)."""

    def __init__(self, app: App, settings: LineageSettings | Callable[[], LineageSettings]) -> None:
        """``settings``, or how to get them: resolved on first use (when the app opens)."""
        self._app = app
        self._settings = settings
        self.recorder = Recorder()

    @property
    def settings(self) -> LineageSettings:
        if not isinstance(self._settings, LineageSettings):
            self._settings = self._settings()
        return self._settings

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def install(self, gate: Gate, *, before: str | None) -> None:
        """Put the ``lineage`` interceptor on ``gate`` (before the interceptor named
        ``before``) and its wait hook; once."""
        if "lineage" in gate.names:
            return
        gate.add("lineage", self.recorder.interceptor, before=before)
        gate.wait_hooks.append(self.recorder.wait_ended)

    def listen(self, engine: Any) -> None:
        """Record the decisions of ``engine`` (a ``PolicyEngine``) with the effects."""
        engine.listen(self.recorder.on_decision)
        self.recorder.listening = True

    def inputs(self, kind: str, fn: Inputs) -> None:
        """Name the inputs of effects of ``kind``: ``fn(call)`` returns ``{name: value}``
        (each value is hashed). Replaces the built-in naming for that kind."""
        self.recorder.kinds[kind] = fn

    # ---- reading --------------------------------------------------------------------------

    async def show(self, run_id: str, *, tenant: str | None = None) -> RunLineage:
        """The lineage of run ``run_id`` (``RunLineage``), its child runs under their
        starts (``MAX_DEPTH`` deep, ``MAX_EFFECTS`` effects in all). ``RunNotFound`` if the
        run is not in the caller's tenant, ``PermissionDenied`` as ``get_run``."""
        row = await self._app.get_run(run_id, tenant=tenant)
        budget = [MAX_EFFECTS]
        return await self._load(row, 0, budget)

    async def _load(self, row: RunRow, depth: int, budget: list[int]) -> RunLineage:
        store = self._app.store
        effects = await store.list_effects(row.id)
        budget[0] -= len(effects)
        children: dict[str, RunLineage] = {}
        truncated = False
        for e in effects:
            if e.kind != "child_start" or e.status != "ok" or not e.output:
                continue
            if depth + 1 > MAX_DEPTH or budget[0] <= 0:
                truncated = True
                continue
            child_id = _child_id(e.output)
            child = None if child_id is None else await store.get_run(child_id, tenant=row.tenant)
            if child is not None:
                children[child.id] = await self._load(child, depth + 1, budget)
        return build(row, effects, children, truncated=truncated)

    async def runs(
        self,
        model: str,
        *,
        since: str | float | timedelta | None = None,
        tenant: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[dict[str, Any]]:
        """The runs whose model calls card ``model`` answered: ``"id@version"`` for that
        version, ``"id"`` for any. Newest use first, at most ``limit``; ``since`` (a
        duration back from now such as ``"7d"``, an ISO 8601 time, epoch seconds or a
        ``timedelta``) keeps calls that started then or later. Each: ``run_id``,
        ``workflow``, ``version``, ``tenant``, ``status``, ``parent_id``, ``created_at``,
        ``models`` (the ``id@version`` it used, of those asked), ``calls``, ``first_at``,
        ``last_at`` (epoch seconds). Scoped as ``list_runs`` (``PermissionDenied`` for
        another tenant); ``InvalidInput`` for an empty model, a bad ``since`` or ``limit``."""
        model = model.strip()
        if not model or model.startswith("@"):
            raise InvalidInput(f"model must be a card id or id@version, not {model!r}")
        if not 1 <= limit <= 10_000:
            raise InvalidInput(f"limit must be between 1 and 10000, not {limit}")
        scope = await self._app.authorize("list_runs", tenant=tenant)
        await self._app._ready()
        store = self._app.store
        start = _since(since, store.clock())
        if "@" in model:
            low, high = model, model
            query = "lineage_model_runs"
        else:  # every version: deployments from "id@" up to (not including) "id" + "A"
            low, high = f"{model}@", f"{model}A"
            query = "lineage_model_runs_any"
        params = {"low": low, "high": high, "since": start, "tenant": scope, "limit": limit}
        rows = await store.fetch(query, params)
        return [_run_use(r) for r in rows]

    async def openlineage(
        self, run_id: str, *, tenant: str | None = None, producer: str | None = None
    ) -> list[RunEvent]:
        """The run ``run_id`` and everything under it (``show``) as OpenLineage run events
        (``lineage_openlineage``: the mapping), oldest first. ``producer``: the URI the
        events name as their producer (default: aiosys's). Scoped as ``show``."""
        from .lineage_openlineage import PRODUCER, events

        return events(await self.show(run_id, tenant=tenant), producer=producer or PRODUCER)


def _child_id(output: str) -> str | None:
    try:
        value = json.loads(output)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _since(since: str | float | timedelta | None, now: float) -> float:
    """Epoch seconds from ``since`` (see ``Lineage.runs``); 0 for None."""
    if since is None:
        return 0.0
    if isinstance(since, timedelta):
        return now - since.total_seconds()
    if isinstance(since, str):
        try:
            return parse_before(since, now)
        except ValueError as exc:
            raise InvalidInput(f"since: {exc}") from None
    if isinstance(since, int | float) and not isinstance(since, bool):
        return float(since)
    raise InvalidInput(
        f"since must be a duration (7d), an ISO 8601 time, a timedelta or epoch seconds, "
        f"not {type(since).__name__}"
    )


def _run_use(row: dict[str, Any]) -> dict[str, Any]:
    models = row.get("models") or ""
    return {
        "run_id": row["id"],
        "workflow": row["workflow"],
        "version": row["version"],
        "tenant": row["tenant"],
        "status": row["status"],
        "parent_id": row["parent_id"],
        "created_at": float(row["created_at"]),
        "models": sorted(set(str(models).split(","))) if models else [],
        "calls": int(row["calls"]),
        "first_at": float(row["first_at"]),
        "last_at": float(row["last_at"]),
    }


__all__ = ["Lineage", "LineageSettings"]
