"""aiosys: an AI operating system. Durable, governed, observable workflows.

The public surface; everything else is internal and free to move.
"""

from .app import App
from .errors import (
    AiosysError,
    ChildFailed,
    IdempotencyConflict,
    InvalidInput,
    NonDeterminismError,
    PermanentError,
    RunFailed,
    TransientError,
    UnknownWorkflow,
    WaitTimeout,
)
from .kernel import Context, Retry, RunHandle, current_step

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
    "UnknownWorkflow",
    "WaitTimeout",
    "current_step",
]
