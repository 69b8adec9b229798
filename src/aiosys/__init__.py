"""aiosys: an AI operating system. Durable, governed, observable workflows.

The public surface; everything else is internal and free to move.

The names are imported on first use (PEP 562): ``import aiosys`` alone, or a command such as
``aiosys runs list`` that never touches the kernel, does not pay for pydantic, asyncio and the
model plane. ``from aiosys import App`` imports them as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AiosysError,
    ChildFailed,
    IdempotencyConflict,
    InvalidInput,
    NonDeterminismError,
    PermanentError,
    RunFailed,
    TransientError,
    UnknownTopic,
    UnknownWorkflow,
    WaitTimeout,
)

if TYPE_CHECKING:
    from .app import App
    from .kernel import Context, Retry, RunHandle, current_step

# Public name -> the module that defines it, imported when the name is first looked up.
_LAZY = {
    "App": ".app",
    "Context": ".kernel",
    "Retry": ".kernel",
    "RunHandle": ".kernel",
    "current_step": ".kernel",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AiosysError",
    "App",
    "ChildFailed",
    "Context",
    "IdempotencyConflict",
    "InvalidInput",
    "NonDeterminismError",
    "PermanentError",
    "Retry",
    "RunFailed",
    "RunHandle",
    "TransientError",
    "UnknownTopic",
    "UnknownWorkflow",
    "WaitTimeout",
    "current_step",
]
