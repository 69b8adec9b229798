"""The built-in roles (RBAC), checked on every client call before policy.

=========  ==============================================================================
role       may
=========  ==============================================================================
admin      everything in its tenant, manage the tenant's API keys (``manage_keys``), prune
           its ended runs (``prune_runs``) and export its audit records (``export_audit``)
operator   start, signal, cancel and resume runs; read runs and usage; call models
runner     start runs and read runs; call models
viewer     read runs and usage
=========  ==============================================================================

Every role acts in its principal's tenant only (the kernel scopes each call first). A role
this table does not know grants nothing here (Cedar policies may read it), except on human
tasks: the task actions (``TASK_ACTIONS``: list, read, claim, release and decide tasks) pass
this table, because each task names the role that may act on it (``paralegal``), which the
inbox checks on the task itself (``aiosys.humans.inbox``). No role may
change the model catalog, which every tenant shares (``manage_catalog``): only the local
operator, without identity, does that. The local principal passes without a check.
"""

from __future__ import annotations

from ..errors import PermissionDenied
from ..kernel.checks import ClientCall

_READ = frozenset({"read_run", "list_runs"})

#: Role -> the client actions it allows.
ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {
            "start_workflow",
            "signal_run",
            "cancel_run",
            "resume_run",
            "read_usage",
            "call_model",
            "manage_keys",
            "prune_runs",
            "export_audit",
        }
    )
    | _READ,
    "operator": frozenset(
        {"start_workflow", "signal_run", "cancel_run", "resume_run", "read_usage", "call_model"}
    )
    | _READ,
    "runner": frozenset({"start_workflow", "call_model"}) | _READ,
    "viewer": frozenset({"read_usage"}) | _READ,
}


#: Client actions on human tasks: allowed by the task's own role (checked by the inbox).
TASK_ACTIONS = frozenset({"list_tasks", "read_task", "claim_task", "release_task", "complete_task"})


def allows(roles: frozenset[str], action: str) -> bool:
    """Whether any of ``roles`` allows ``action``."""
    return any(action in ROLES.get(role, ()) for role in roles)


def check_roles(call: ClientCall) -> None:
    """The client check of the built-in roles: ``PermissionDenied`` naming the principal,
    its roles, the action and the roles that would allow it."""
    principal = call.principal
    if principal.local or call.action in TASK_ACTIONS or allows(principal.roles, call.action):
        return
    needed = [role for role, actions in ROLES.items() if call.action in actions]
    has = ", ".join(sorted(principal.roles)) or "none"
    need = f"one of the roles {', '.join(needed)}" if needed else "the local operator"
    raise PermissionDenied(
        f"{principal.uid} (roles: {has}) may not {call.action.replace('_', ' ')}: that takes {need}"
    )
