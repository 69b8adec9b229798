"""What lineage records with each effect: the content hashes of its inputs and the policy
decisions that let it run, in the effect's own record (no write of its own).

The gate's ``lineage`` interceptor sits just inside the effect log and the audit log (a
replayed effect, whose record is read back, is not hashed again) and outside ``authorize``
(so it sees the decisions made for the effect) and retry (an effect's inputs are hashed once,
not per attempt). Before the effect runs it hashes the effect's inputs (``lineage_hash``),
named by an *inputs* function of the effect's kind:

- ``step``: its arguments, by parameter name (``ocr(path)`` -> ``path``);
- ``model``: a task's validated input (``input``) or a direct call's request (``request``);
- ``child_start``: the child run's input (``input``);
- ``human_task``: the data the person reviews (``data``);
- any other kind: ``params["input"]`` or ``params["data"]`` when there is one (an extension
  names its own with ``Lineage.inputs(kind, fn)``).

When the effect ends, however it ends, it adds ``{"in": {name: hash}, "parts": {name:
[part, ...]}, "policy": [decision, ...]}`` under ``lineage`` to the record's ``meta``
(``EffectCall.meta["record"]``), written in the same statement as the record. The output's
hash is not recorded: the output is, and its hash is computed when lineage is read. A wait
that parked and is resumed from its record after a restart (the interceptors do not see it
end: ``Gate.wait_hooks``) has its inputs hashed again from the call the workflow made anew.
The kernel's own waits and reads (``now``, ``sleep``, ``signal``, ``child_result``) have no
inputs and are passed through.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ..kernel.gate import EffectCall, Next
from .lineage_hash import content_hash, hashes

#: Effect kinds with no inputs of their own (their outputs are read with the record).
KERNEL_WAITS = frozenset({"now", "sleep", "signal", "child_result"})
#: The key of the lineage entry in an effect's ``meta``.
KEY = "lineage"
_DECISIONS = "lineage_decisions"  # call.meta: the decisions made for the effect so far

_SCALARS = frozenset({str, int, float, bool, type(None)})
#: Names an effect's inputs: ``{name: value}`` (the values are hashed).
Inputs = Callable[[EffectCall], dict[str, Any]]


def step_inputs(call: EffectCall) -> dict[str, Any]:
    """A step's arguments by parameter name; positional ones past the named parameters (a
    ``*args``) by position (``"2"``)."""
    names = _positional_names(call.fn) if call.fn is not None else ()
    out: dict[str, Any] = {}
    for i, value in enumerate(call.args):
        out[names[i] if i < len(names) else str(i)] = value
    out.update(call.kwargs)
    return out


@lru_cache(maxsize=4096)
def _positional_names_cached(fn: Callable[..., Any]) -> tuple[str, ...]:
    return _names(fn)


def _positional_names(fn: Callable[..., Any]) -> tuple[str, ...]:
    try:
        return _positional_names_cached(fn)
    except TypeError:  # an unhashable callable
        return _names(fn)


def _names(fn: Callable[..., Any]) -> tuple[str, ...]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in params if p.kind in kinds)


def model_inputs(call: EffectCall) -> dict[str, Any]:
    """A task's validated input (``input``), or a direct model call's request (``request``)."""
    p = call.params
    if "input" in p:
        return {"input": p["input"]}
    return {"request": p["request"]} if "request" in p else {}


def child_inputs(call: EffectCall) -> dict[str, Any]:
    """The input the child run is started with (validated by the child's workflow, as its
    run's ``input`` will hold it, when this app declares that workflow)."""
    p = call.params
    value = p.get("input") or {}
    spec = _child_spec(call)
    if spec is not None:
        try:
            value = json.loads(spec.validate_input(value))
        except Exception:  # refused: the start fails the same way; hash what was given
            pass
    return {"input": value}


def _child_spec(call: EffectCall) -> Any:
    ex = call.run_execution
    if ex is None:
        return None
    versions = ex.app.workflows.get(str(call.params.get("workflow", call.name)), {})
    version = call.params.get("version")
    if not versions:
        return None
    return versions.get(version) if version is not None else list(versions.values())[-1]


def data_inputs(call: EffectCall) -> dict[str, Any]:
    """``params["input"]``, else ``params["data"]`` (a human task's data, kept as JSON text:
    its value), else none."""
    p = call.params
    if "input" in p:
        return {"input": p["input"]}
    if "data" not in p:
        return {}
    data = p["data"]
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            pass
    return {"data": data}


DEFAULT_INPUTS: dict[str, Inputs] = {
    "step": step_inputs,
    "model": model_inputs,
    "child_start": child_inputs,
    "human_task": data_inputs,
}


def entry(named: dict[str, Any]) -> dict[str, Any]:
    """The ``in`` and ``parts`` of a lineage entry for named input values."""
    ins: dict[str, str | None] = {}
    parts: dict[str, list[str]] = {}
    for name, value in named.items():
        if type(value) in _SCALARS:  # the commonest arguments: no members, one hash
            ins[name] = content_hash(value)
            continue
        whole, members = hashes(value)
        ins[name] = whole
        if members:
            parts[name] = members
    out: dict[str, Any] = {"in": ins}
    if parts:
        out["parts"] = parts
    return out


def decision_entry(decision: Any) -> dict[str, Any]:
    """A policy decision as a lineage entry keeps it."""
    return {
        "decision": str(decision.decision),
        "action": str(decision.action),
        "resource": str(decision.resource),
        "policies": [str(p) for p in decision.policies],
        "policy_version": str(decision.policy_version),
    }


class Recorder:
    """The ``lineage`` interceptor, its policy listener and its wait hook (see the module
    docstring)."""

    def __init__(self) -> None:
        self.kinds: dict[str, Inputs] = dict(DEFAULT_INPUTS)
        self.listening = False  # a policy listener is installed: collect decisions

    def _inputs(self, call: EffectCall) -> dict[str, Any] | None:
        fn = self.kinds.get(call.kind, data_inputs)
        try:
            named = fn(call)
            return entry(named) if named else None
        except Exception:  # lineage never fails an effect: the record says nothing
            return None

    async def interceptor(self, call: EffectCall, next: Next) -> Any:
        """The gate's ``lineage`` interceptor."""
        if call.run_execution is None or call.kind in KERNEL_WAITS:
            return await next(call)
        found = self._inputs(call)  # before the effect runs: a step may change its arguments
        if self.listening:
            call.meta[_DECISIONS] = []
        try:
            return await next(call)
        finally:  # an error, a park (Parked) or a cancellation: the record says it too
            decisions = call.meta.pop(_DECISIONS, None)
            if decisions:
                found = {**(found or {}), "policy": decisions}
            if found:
                record = call.meta.get("record")
                call.meta["record"] = {**(record or {}), KEY: found}

    def on_decision(self, decision: Any) -> None:
        """A policy listener (``PolicyEngine.listen``): a decision made for a run's effect
        goes into that effect's lineage entry."""
        call = getattr(decision, "call", None)
        if isinstance(call, EffectCall):
            made = call.meta.get(_DECISIONS)
            if made is not None:
                made.append(decision_entry(decision))

    def wait_ended(self, call: EffectCall, since: float, error: BaseException | None) -> None:
        """``Gate.wait_hooks``: a parked wait resumed from its record (after a restart or a
        move) ends without passing the interceptor; its inputs are hashed again here."""
        if call.run_execution is None or call.kind in KERNEL_WAITS:
            return
        record = call.meta.get("record")
        if isinstance(record, dict) and KEY in record:
            return
        found = self._inputs(call)
        if found:
            call.meta["record"] = {**(record or {}), KEY: found}
