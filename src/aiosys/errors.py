"""The one exception hierarchy of aiosys.

::

    AiosysError                         base of everything aiosys raises on purpose
    ├── TransientError                  retried by the step's Retry policy
    │   ├── StepTimeout                 a step ran past its timeout
    │   ├── StepInterrupted             a step raised KeyboardInterrupt, a CancelledError that
    │   │                               was not its run's cancellation, or another BaseException
    │   └── ProviderUnavailable         a model provider failed (429/5xx, timeout, network)
    ├── PermanentError                  never retried; ends the run as ``dead`` unless caught
    │   ├── NotSerializable             an effect's output would not come back the same from JSON
    │   ├── StepExited                  a step raised SystemExit or GeneratorExit
    │   ├── WaitTimeout                 ``ctx.wait_for`` reached its timeout
    │   ├── ChildFailed                 a child workflow ended without success
    │   ├── BudgetExceeded              a hard budget would be exceeded: the call is not made
    │   ├── ModelNotFound               no model card (or alias) of that name
    │   ├── InvalidModelOutput          every candidate's output failed the task's schema
    │   ├── NoRouteAvailable            every candidate is excluded, open or failed
    │   ├── ProviderRejected            the provider refused the request (HTTP 4xx)
    │   │   └── DeploymentUnusable      the deployment refused (401/403/404): the router
    │   │                               falls back to the next candidate
    │   ├── MaxRecoveriesExceeded       a run's worker died under it too often: ``dead``
    │   └── PolicyDenied                a policy (Cedar) forbade the action; names the policies
    │       ├── ApprovalRequired        forbidden until a person approves (``@approval``): the
    │       │                           gate parks a workflow's effect as a human task instead
    │       └── ApprovalRejected        the person asked for that approval rejected the effect
    ├── ConfigError                     a bad store URL, app path or setting
    │   ├── StoreUnavailable            the store cannot be reached (connection refused or
    │   │                               lost, database gone): try again later (HTTP 503)
    │   └── UnknownQueue                a start named a queue the app does not declare
    ├── AuthenticationFailed            an API key or bearer token is unknown, expired,
    │                                   revoked or does not verify
    ├── PermissionDenied                the principal may not do this (its roles or tenant)
    ├── UnknownWorkflow                 no workflow (or version) of that name is registered
    ├── UnknownTopic                    an event was published on a topic no workflow is on
    ├── InvalidInput                    the input does not fit the workflow's type hints,
    │                                   or holds text no store can keep as it is
    ├── IdempotencyConflict             an idempotency key reused for another workflow or input
    ├── RunNotFound                     no run has that id (in the caller's tenant)
    ├── RunFailed                       awaiting a run's result that ended without success
    ├── RunTimedOut                     a run passed its per-run timeout
    ├── InvalidRunState                 the action does not apply to the run's status
    ├── TaskNotFound                    no human task has that id (in the caller's tenant)
    ├── InvalidTaskState                the action does not apply to the human task's status
    ├── StoreRefused                    the store refused one write (a constraint, a value):
    │                                   only that write's run fails
    ├── NonDeterminismError             replay met a different effect than the one recorded
    └── UnwindSwallowed                 the workflow swallowed the unwinding of its execution

    RunCancelled (BaseException)        control flow: the run was cancelled; user code must
                                        not swallow it, so it is not an ``Exception``
"""

from __future__ import annotations

from typing import Any


class AiosysError(Exception):
    """Base of every error aiosys raises on purpose."""


class TransientError(AiosysError):
    """A failure that may go away: the step is retried under its ``Retry`` policy."""


class StepTimeout(TransientError):
    """A step ran longer than its ``timeout``."""


class StepInterrupted(TransientError):
    """A step raised a ``BaseException`` that is not an ``Exception`` and not an exit:
    ``KeyboardInterrupt``, an ``asyncio.CancelledError`` that was not the cancellation of the
    task executing the run (a library's inner task cancelled under the step), or a foreign
    ``BaseException`` subclass. Left alone, such an exception would stop the worker's event
    loop (or be mistaken for the run being cancelled); the step executor turns it into this
    error, a failed attempt retried under the step's ``Retry`` like any unknown error.
    ``KeyboardInterrupt`` is transient: signals reach only the main thread, so in a step it
    was raised by the step's code or by a Ctrl-C that hit the loop while the step ran, and
    neither says the step's input is bad (the ``aiosys worker`` command handles SIGINT
    itself, so Ctrl-C drains it instead). ``raised`` names the original class; the
    original is the ``__cause__``."""

    def __init__(self, message: str, *, raised: str = "") -> None:
        super().__init__(message)
        self.raised = raised


class PermanentError(AiosysError):
    """A failure that will not go away by retrying: the step is not retried."""


class NotSerializable(PermanentError):
    """An effect's output cannot be recorded as JSON that decodes back to the same value
    (see ``aiosys.kernel.serde``: annotate the return type, or return plain JSON)."""


class StepExited(PermanentError):
    """A step raised ``SystemExit`` (argparse on a bad argument, ``sys.exit`` in a library,
    click) or ``GeneratorExit``: code asking to end the process or a generator, which would
    stop the worker's event loop. The step executor turns it into this error, a failed
    attempt that is permanent (the same input exits the same way), so the run ends ``dead``
    with it recorded and ``resume`` can retry after a fix. ``raised`` names the original
    class, ``code`` is ``SystemExit.code``; the original is the ``__cause__``."""

    def __init__(self, message: str, *, raised: str = "", code: object = None) -> None:
        super().__init__(message)
        self.raised = raised
        self.code = code


class WaitTimeout(PermanentError):
    """``ctx.wait_for`` waited ``timeout`` seconds and no signal came."""


class ChildFailed(PermanentError):
    """A child workflow ended ``failed``, ``dead`` or ``cancelled``."""

    def __init__(self, message: str, *, child_id: str = "", status: str = "") -> None:
        super().__init__(message)
        self.child_id = child_id
        self.status = status


class BudgetExceeded(PermanentError):
    """A hard budget would be exceeded: the model call was stopped before it was sent."""


class ModelNotFound(PermanentError):
    """No model card or alias of that name is in the catalog."""


class InvalidModelOutput(PermanentError):
    """The model's output does not fit the task contract's output schema."""


class NoRouteAvailable(PermanentError):
    """No candidate of the routing plan could serve the call (all excluded, open or failed)."""


class ProviderRejected(PermanentError):
    """The provider refused the request (HTTP 4xx other than 429): retrying will not help."""


class DeploymentUnusable(ProviderRejected):
    """The deployment itself cannot serve, whatever the request: HTTP 401 or 403 (a wrong or
    revoked key, no access) or 404 (a missing model or deployment). The router falls back to
    the next candidate and opens this deployment's circuit breaker; ``status`` is the HTTP
    status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProviderUnavailable(TransientError):
    """The provider failed in a way that may pass: 429, 5xx, timeout, connection error,
    malformed response. ``retry_after`` is the provider's hint, in seconds, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MaxRecoveriesExceeded(PermanentError):
    """The run was recovered (its lease expired under a worker that died or hung) more often
    than its workflow's ``max_recoveries``: it ends ``dead`` instead of being executed again,
    so a step that kills its process (OOM, ``os._exit``) cannot crash workers forever."""


class PolicyDenied(PermanentError):
    """A policy forbade the action (``action`` on ``resource`` by ``principal``). ``policies``
    are the ids of the policies that decided it (Cedar's diagnostics ``reason``) and
    ``policy_version`` the hash of the policy set in force. Permanent: retrying does not
    change the answer; an effect denied inside a workflow ends the run ``dead`` unless the
    workflow catches it."""

    def __init__(
        self,
        message: str,
        *,
        action: str = "",
        resource: str = "",
        principal: str = "",
        policies: tuple[str, ...] = (),
        policy_version: str = "",
    ) -> None:
        super().__init__(message)
        self.action = action
        self.resource = resource
        self.principal = principal
        self.policies = tuple(policies)
        self.policy_version = policy_version

    def about(self) -> dict[str, Any]:
        """What the denial is about (``action``, ``resource``, ``principal``, ``policies``,
        ``policy_version``), as keywords: to raise another denial of the same request."""
        return {
            "action": self.action,
            "resource": self.resource,
            "principal": self.principal,
            "policies": self.policies,
            "policy_version": self.policy_version,
        }


class ApprovalRequired(PolicyDenied):
    """Policies that forbid the action until a person approves it (``@approval``) denied it:
    ``role`` approves, ``sla`` (seconds; None: no limit) and ``escalate_to`` say how the task
    escalates. A workflow's effect never raises it: the gate parks the effect as a human task
    and runs it once approved (``aiosys.humans.approval``); an effect made outside a
    workflow cannot wait, so for it this is the denial."""

    def __init__(
        self,
        message: str,
        *,
        role: str = "",
        sla: float | None = None,
        escalate_to: tuple[str, ...] = (),
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.role = role
        self.sla = sla
        self.escalate_to = tuple(escalate_to)


class ApprovalRejected(PolicyDenied):
    """The person asked to approve a gated effect rejected it: ``task_id`` the human task,
    ``decided_by`` who (a principal id), ``role`` as what; ``policies`` asked for the
    approval. Permanent, like every denial."""

    def __init__(
        self,
        message: str,
        *,
        task_id: str = "",
        decided_by: str | None = None,
        role: str = "",
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.task_id = task_id
        self.decided_by = decided_by
        self.role = role


class ConfigError(AiosysError):
    """A store URL, app reference or setting is wrong."""


class StoreUnavailable(ConfigError):
    """The store cannot be reached: a connection refused or lost, a database that is gone.
    Not the caller's fault, and it may pass (the HTTP API answers 503); a ``ConfigError``
    because a wrong URL looks the same from here."""


class UnknownQueue(ConfigError):
    """A start named a queue this app does not declare: no worker of the app would take
    the run (the caller's mistake over HTTP: 422; a ``ConfigError`` in code)."""


class AuthenticationFailed(AiosysError):
    """A credential was refused: an unknown, expired or revoked API key, or a bearer token
    whose signature, issuer, audience or expiry does not verify. The message says which,
    never the secret (HTTP 401)."""


class PermissionDenied(AiosysError):
    """The principal may not do this: its roles do not allow the action, or the object
    belongs to another tenant and the action would change it (HTTP 403)."""


class UnknownWorkflow(AiosysError):
    """No workflow of that name (or version) is registered in this app."""


class UnknownTopic(AiosysError):
    """An event was published on a topic that no workflow of this app is triggered by
    (``@app.workflow(on=...)``): nothing would keep it, so it is refused, not dropped."""


class InvalidInput(AiosysError):
    """The input does not validate against the workflow's parameters."""


class IdempotencyConflict(AiosysError):
    """An idempotency key was reused with another workflow or another input. ``run_id`` is
    the run the key started; start with a new key, or with that run's workflow and input."""

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class RunNotFound(AiosysError):
    """No run has that id, or it belongs to another tenant (reported alike, so a run's
    existence does not leak across tenants)."""


class RunFailed(AiosysError):
    """The awaited run ended ``failed``, ``dead`` or ``cancelled``; ``error`` is its record."""

    def __init__(self, message: str, *, run_id: str, status: str, error: dict[str, object]):
        super().__init__(message)
        self.run_id = run_id
        self.status = status
        self.error = error


class RunTimedOut(AiosysError):
    """The run passed its per-run ``timeout``."""


class InvalidRunState(AiosysError):
    """The action does not apply to a run in its current status."""


class TaskNotFound(AiosysError):
    """No human task has that id, or it belongs to another tenant (reported alike)."""


class InvalidTaskState(AiosysError):
    """The action does not apply to the human task as it is now: claiming or deciding a
    task another principal holds, claiming or deciding one that is decided already or ended
    by its SLA, releasing one that is not claimed, deciding one whose run has ended.
    ``task_status`` is the task's status then (``open``, ``claimed``, ``completed``,
    ``escalated``; None when not known). A refusal for who the caller is (a role it lacks,
    a policy) is ``PermissionDenied`` or ``PolicyDenied`` instead."""

    def __init__(self, message: str, *, task_status: str | None = None) -> None:
        super().__init__(message)
        self.task_status = task_status


class StoreRefused(AiosysError):
    """The store refused one write for what it holds (a constraint it violates, a value it
    cannot keep), not for being unreachable. The group commit then writes the batch's writes
    one by one, so only the refused write's run fails."""


class NonDeterminismError(AiosysError):
    """Replay met an effect that differs from the one recorded at that position."""


class UnwindSwallowed(AiosysError):
    """The workflow caught the ``BaseException`` that unwinds a parked or stopping execution
    (an ``except BaseException`` or a bare ``except`` around a wait) and went on: the run is
    failed, since what it did after that point cannot be replayed faithfully."""


class RunCancelled(BaseException):
    """Raised inside a workflow whose run was cancelled; it stops at its next effect."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


__all__ = [
    "AiosysError",
    "AuthenticationFailed",
    "BudgetExceeded",
    "ChildFailed",
    "ConfigError",
    "DeploymentUnusable",
    "IdempotencyConflict",
    "InvalidInput",
    "InvalidModelOutput",
    "InvalidRunState",
    "InvalidTaskState",
    "MaxRecoveriesExceeded",
    "ModelNotFound",
    "NoRouteAvailable",
    "NonDeterminismError",
    "NotSerializable",
    "PermanentError",
    "PermissionDenied",
    "PolicyDenied",
    "ProviderRejected",
    "ProviderUnavailable",
    "RunCancelled",
    "RunFailed",
    "RunNotFound",
    "RunTimedOut",
    "StepExited",
    "StepInterrupted",
    "StepTimeout",
    "StoreRefused",
    "StoreUnavailable",
    "TaskNotFound",
    "TransientError",
    "UnknownQueue",
    "UnknownTopic",
    "UnknownWorkflow",
    "UnwindSwallowed",
    "WaitTimeout",
]
