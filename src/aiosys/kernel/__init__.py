"""Durable execution: App, Context, the runtime that replays runs, workers and the gate."""

from .app import App, QueueSpec, RunHandle, WorkflowSpec
from .checks import ACTIONS, Check, Checks, ClientCall, scope_tenant
from .context import ChildHandle, Context
from .effects import StepInfo, current_step
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
    "QueueSpec",
    "Retry",
    "RunHandle",
    "StepInfo",
    "Worker",
    "WorkflowSpec",
    "bind_principal",
    "current_principal",
    "current_step",
    "principal_json",
    "principal_of_run",
    "scope_tenant",
]
