"""Durable execution: App, Context, the runtime that replays runs, workers and the gate.

The names are imported on first use (PEP 562), so that a module of this package (such as
``principal``) can be imported without the whole kernel and pydantic: the ``aiosys`` command
reads runs without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import App, QueueSpec, RunHandle, WorkflowSpec
    from .checks import ACTIONS, Check, Checks, ClientCall, scope_tenant
    from .context import ChildHandle, Context
    from .effects import StepInfo, current_step
    from .events import Published, Triggered
    from .gate import EffectCall, Gate, Interceptor, Next
    from .principal import (
        LOCAL,
        Principal,
        bind_principal,
        current_principal,
        principal_json,
        principal_of_run,
    )
    from .retry import Retry
    from .worker import Worker

# Public name -> the module of this package that defines it.
_LAZY = {
    "App": ".app",
    "QueueSpec": ".app",
    "RunHandle": ".app",
    "WorkflowSpec": ".app",
    "ACTIONS": ".checks",
    "Check": ".checks",
    "Checks": ".checks",
    "ClientCall": ".checks",
    "scope_tenant": ".checks",
    "ChildHandle": ".context",
    "Context": ".context",
    "StepInfo": ".effects",
    "current_step": ".effects",
    "Published": ".events",
    "Triggered": ".events",
    "EffectCall": ".gate",
    "Gate": ".gate",
    "Interceptor": ".gate",
    "Next": ".gate",
    "LOCAL": ".principal",
    "Principal": ".principal",
    "bind_principal": ".principal",
    "current_principal": ".principal",
    "principal_json": ".principal",
    "principal_of_run": ".principal",
    "Retry": ".retry",
    "Worker": ".worker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ACTIONS",
    "LOCAL",
    "App",
    "Check",
    "Checks",
    "ChildHandle",
    "ClientCall",
    "Context",
    "EffectCall",
    "Gate",
    "Interceptor",
    "Next",
    "Principal",
    "Published",
    "QueueSpec",
    "Retry",
    "RunHandle",
    "StepInfo",
    "Triggered",
    "Worker",
    "WorkflowSpec",
    "bind_principal",
    "current_principal",
    "current_step",
    "principal_json",
    "principal_of_run",
    "scope_tenant",
]
