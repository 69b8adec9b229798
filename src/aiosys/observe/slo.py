"""Service level objectives over the stats (``aiosys.observe.stats``), checked by
``aiosys slo check`` and ``app.check_slos()``.

An SLO names one workflow or one model, an objective, a target and a window::

    [[slo]]                       # in ./aiosys.toml; or app.slo(workflow="intake", ...)
    workflow = "intake"           # or: model = "gpt-4o-mini"
    objective = "p95_latency"     # p95_latency | error_rate | cost_per_run (cost_per_call)
    target = 30                   # seconds | a fraction in (0, 1] | currency units
    window = "1h"                 # a duration (default 1h): the stats of the last hour

Objectives, and the value measured for them over the window (the stats' fields):

=================  =========================================  ===============================
objective          workflow                                   model
=================  =========================================  ===============================
``p95_latency``    p95 of run latency, first start to end, s  p95 of call latency, s (not ms)
``error_rate``     runs ended failed or dead / runs ended     errors and denials / calls
``cost_per_run``   model cost per run that succeeded          (refused: use cost_per_call)
``cost_per_call``  (refused: use cost_per_run)                cost per answered call
=================  =========================================  ===============================

**Burn** is ``measured / target``: above 1 the SLO is broken. For ``error_rate`` the target is
the error budget (the share of runs allowed to fail), so the burn is the error budget's burn
rate over the window (SRE: observed error rate / allowed error rate; 2 means the budget goes
twice as fast as it may). An SLO with nothing measured in its window (no run ended, no call)
is reported ``no data`` and is not broken: a quiet hour breaks no promise.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..durations import FORMS, parse_duration
from ..errors import ConfigError
from ..store import Store
from .stats import Stats

OBJECTIVES = ("p95_latency", "error_rate", "cost_per_run", "cost_per_call")
DEFAULT_WINDOW = "1h"


@dataclass(frozen=True, slots=True)
class Slo:
    """One objective of one workflow or model (exactly one of the two is set); ``window``
    in seconds; ``source`` says where it was declared (``code``, ``aiosys.toml [[slo]] #2``)."""

    objective: str
    target: float
    window: float
    workflow: str | None = None
    model: str | None = None
    source: str = "code"

    @property
    def subject(self) -> str:
        """``workflow intake`` or ``model gpt-4o-mini``."""
        return f"workflow {self.workflow}" if self.workflow is not None else f"model {self.model}"


def make_slo(
    *,
    objective: str,
    target: float,
    window: str | float = DEFAULT_WINDOW,
    workflow: str | None = None,
    model: str | None = None,
    source: str = "code",
) -> Slo:
    """A validated ``Slo``. ``ConfigError`` (naming ``source`` and what is wrong) for: not
    exactly one of ``workflow`` and ``model``, an unknown objective or one that does not
    apply to the subject, a target that is not a positive finite number (for ``error_rate``:
    at most 1), a window that is not a positive duration (``30m``, ``1h``, ``7d``) or number
    of seconds."""
    where = f"SLO ({source})"
    if (workflow is None) == (model is None):
        raise ConfigError(f"{where}: name exactly one of workflow or model")
    for key, value in (("workflow", workflow), ("model", model)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{where}: {key} must be a non-empty string, not {value!r}")
    if objective not in OBJECTIVES:
        raise ConfigError(
            f"{where}: objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}"
        )
    if objective == "cost_per_run" and model is not None:
        raise ConfigError(f"{where}: a model has no runs; its cost objective is cost_per_call")
    if objective == "cost_per_call" and workflow is not None:
        raise ConfigError(f"{where}: a workflow's cost objective is cost_per_run")
    if isinstance(target, bool) or not isinstance(target, int | float):
        raise ConfigError(f"{where}: target must be a number, not {target!r}")
    if not math.isfinite(target) or target <= 0:
        raise ConfigError(f"{where}: target must be a positive number, not {target!r}")
    if objective == "error_rate" and target > 1:
        raise ConfigError(f"{where}: an error_rate target is a fraction (0.01 = 1%), not {target}")
    return Slo(objective, float(target), _window(window, where), workflow, model, source)


def _window(value: Any, where: str) -> float:
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise ConfigError(f"{where}: window {value!r} is not {FORMS}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigError(f"{where}: window must be a duration such as 1h, not {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{where}: window must be a positive length of time, not {value!r}")
    return seconds


_KEYS = {"workflow", "model", "objective", "target", "window"}


def slos_from_toml(path: Path = Path("aiosys.toml")) -> list[Slo]:
    """The ``[[slo]]`` tables of ``path`` (none when the file does not exist).
    ``ConfigError`` for a file that is not TOML, ``slo`` that is not an array of tables, an
    unknown key, or a table ``make_slo`` refuses (named by its position, from 1)."""
    if not path.is_file():
        return []
    try:
        with path.open("rb") as f:
            tables = tomllib.load(f).get("slo", [])
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{path}: slo must be an array of tables ([[slo]])")
    out = []
    for i, table in enumerate(tables, start=1):
        source = f"{path.name} [[slo]] #{i}"
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise ConfigError(
                f"SLO ({source}): unknown key {', '.join(unknown)} "
                f"(keys: {', '.join(sorted(_KEYS))})"
            )
        if "objective" not in table or "target" not in table:
            raise ConfigError(f"SLO ({source}): objective and target are required")
        out.append(
            make_slo(
                objective=table["objective"],
                target=table["target"],
                window=table.get("window", DEFAULT_WINDOW),
                workflow=table.get("workflow"),
                model=table.get("model"),
                source=source,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class SloResult:
    """An SLO's check: ``measured`` over its window (None: no data), ``burn``
    (``measured / target``; None without data), ``broken`` (burn above 1), ``samples`` (the
    runs or calls measured), and the window checked (epoch seconds)."""

    slo: Slo
    measured: float | None
    burn: float | None
    broken: bool
    samples: int
    since: float
    until: float

    @property
    def status(self) -> str:
        """``ok``, ``broken`` or ``no data``."""
        return "broken" if self.broken else ("no data" if self.measured is None else "ok")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``aiosys slo check --json``)."""
        s = self.slo
        return {
            "workflow": s.workflow,
            "model": s.model,
            "objective": s.objective,
            "target": s.target,
            "window_s": s.window,
            "source": s.source,
            "measured": self.measured,
            "burn": self.burn,
            "status": self.status,
            "broken": self.broken,
            "samples": self.samples,
            "since": self.since,
            "until": self.until,
        }


def measure(slo: Slo, stats: Stats) -> tuple[float | None, int]:
    """The value ``slo``'s objective has in ``stats`` and how many runs or calls it covers."""
    if slo.workflow is not None:
        wf = stats.of_workflow(slo.workflow)
        if wf is None or wf.runs == 0:
            return None, 0
        value = {
            "p95_latency": wf.latency.p95,
            "error_rate": wf.error_rate,
            "cost_per_run": wf.cost_per_completed_run,
        }[slo.objective]
        return value, wf.succeeded if slo.objective == "cost_per_run" else wf.runs
    m = stats.of_model(slo.model or "")
    if m is None or m.calls == 0:
        return None, 0
    p95 = m.latency_ms.p95
    value = {
        "p95_latency": None if p95 is None else p95 / 1000.0,
        "error_rate": m.error_rate,
        "cost_per_call": m.cost_per_inference,
    }[slo.objective]
    return value, m.calls


async def check_subjects(
    store: Store,
    slos: Sequence[Slo],
    *,
    tenant: str | None,
    workflows: Collection[str],
    models: Mapping[str, Any],
) -> None:
    """``ConfigError`` naming the first thing an SLO check would silently read as "no data":
    ``tenant`` (not None) that has no key, run or model call in ``store``; an SLO whose
    workflow (model) the app does not declare, when it declares ``workflows`` (has model
    cards, ``models``: catalog key -> card); else, the app declaring none (a bare store),
    one that never ran (was never called) in ``tenant`` (None: any). A workflow the app
    declares that has not run yet is "no data", not an error."""

    async def seen(query: str, params: dict[str, Any]) -> bool:
        rows = await store.fetch(query, params)
        return bool(rows and rows[0]["seen"])

    if tenant is not None and not await seen("stats_tenant_seen", {"tenant": tenant}):
        raise ConfigError(f"no tenant {tenant!r} in this store (no key, run or model call)")
    where = "" if tenant is None else f" of tenant {tenant!r}"
    for slo in slos:
        if slo.workflow is not None and slo.workflow not in workflows:
            if workflows:
                raise ConfigError(
                    f"SLO of {slo.source}: no workflow {slo.workflow!r} in this app "
                    f"(declared: {', '.join(sorted(workflows))})"
                )
            params = {"workflow": slo.workflow, "tenant": tenant}
            if not await seen("stats_workflow_seen", params):
                raise ConfigError(
                    f"SLO of {slo.source}: no workflow {slo.workflow!r} in this store (no run "
                    f"of it{where} ever; a typo? pass --app to check against the app's)"
                )
        if slo.model is not None and slo.model not in models:
            if models:
                known = ", ".join(sorted({c.id for c in models.values()}))
                raise ConfigError(
                    f"SLO of {slo.source}: no model {slo.model!r} in this app's catalog "
                    f"(cards: {known})"
                )
            if not await seen("stats_model_seen", {"model": slo.model, "tenant": tenant}):
                raise ConfigError(
                    f"SLO of {slo.source}: no model {slo.model!r} in this store (no call of "
                    f"it{where} ever, and no model card here: a typo?)"
                )


async def check(
    slos: Sequence[Slo], stats_over: Callable[[float], Awaitable[Stats]]
) -> list[SloResult]:
    """Check each SLO against ``await stats_over(window_seconds)`` (the stats of the last
    window; read once per distinct window), in the order given."""
    by_window: dict[float, Stats] = {}
    out = []
    for slo in slos:
        stats = by_window.get(slo.window)
        if stats is None:
            stats = by_window[slo.window] = await stats_over(slo.window)
        measured, samples = measure(slo, stats)
        burn = None if measured is None else measured / slo.target
        broken = burn is not None and burn > 1.0
        out.append(SloResult(slo, measured, burn, broken, samples, stats.since, stats.until))
    return out


__all__ = [
    "OBJECTIVES",
    "Slo",
    "SloResult",
    "check",
    "check_subjects",
    "make_slo",
    "measure",
    "slos_from_toml",
]
