"""Client checks: what governance asks before a caller reads or changes runs.

Like Temporal's client interceptors, but for admission only: every public ``App`` call that
reads or changes runs (``start``, ``signal``, ``cancel``, ``resume``, ``get_run``,
``effects``, ``list_runs``, ``RunHandle``'s reads) and the model plane's per-tenant reports
describe themselves as a ``ClientCall`` and pass it through the checks registered on the app
(``app.add_check(name, check)``), in order. A check returns to allow and raises to refuse
(``PermissionDenied``, ``PolicyDenied``). The kernel registers none and knows none: roles
and Cedar policy live in ``aiosys.governance``. With no check registered, nothing is built
and nothing is awaited.

Before any check, the kernel scopes the call by the bound principal (``scope_tenant``): a
non-local principal acts in its own tenant only.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PermissionDenied
from ..store._text import check_identifier
from .principal import Principal

if TYPE_CHECKING:
    from ..store.base import RunRow

#: The actions of client calls (a check may meet others that layers above add).
ACTIONS = (
    "start_workflow",
    "signal_run",
    "cancel_run",
    "resume_run",
    "read_run",
    "list_runs",
    "read_usage",
    "call_model",
)


@dataclass(frozen=True, slots=True)
class ClientCall:
    """One call of the client API, as the checks see it.

    ``action``: one of ``ACTIONS``; ``principal``: who asks; ``tenant``: the tenant the call
    acts in (None: every tenant, only for the local principal's listings and reads);
    ``workflow``: the workflow started, or the run's; ``run``: the run a run-id action acts
    on, read once before the checks (so ``run.tenant``, ``run.workflow`` and the principal
    that started it, ``run.principal``, are at hand); ``signal``: a signal's name;
    ``input``: a start's input or a signal's payload, as given; ``parent_id``: for the
    start of a child run, the run that starts it (its ``child_start`` effect passed the gate
    already)."""

    action: str
    principal: Principal
    tenant: str | None
    workflow: str | None = None
    run: RunRow | None = None
    signal: str | None = None
    input: Any = None
    parent_id: str | None = None  # a child's start: the run starting it (a workflow's effect)

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else self.run.id


#: A check: allow by returning, refuse by raising. Sync or async.
Check = Callable[[ClientCall], Awaitable[None] | None]


class Checks:
    """The ordered checks of one app. Falsy while empty, so callers skip building a
    ``ClientCall`` at all (``if app.checks.wants(principal): ...``)."""

    __slots__ = ("_all", "_checks", "_local")

    def __init__(self) -> None:
        self._checks: list[tuple[str, Check, bool]] = []
        self._all: tuple[Check, ...] = ()  # every check, in order
        self._local: tuple[Check, ...] = ()  # the checks that apply to the local principal too

    def add(
        self, name: str, check: Check, *, before: str | None = None, local: bool = True
    ) -> None:
        """Add ``check`` (before the one named ``before``, else last). ``local=False``: the
        check is skipped for the embedded default's local principal (it would allow it
        anyway: the built-in roles), so an app without identities pays nothing for it."""
        names = self.names
        if name in names:
            raise ConfigError(f"the app already has a client check named {name!r}")
        if not callable(check):
            raise ConfigError(f"client check {name!r} is not callable")
        at = names.index(before) if before in names else len(names)
        self._checks.insert(at, (name, check, local))
        self._all = tuple(c for _, c, _ in self._checks)
        self._local = tuple(c for _, c, lo in self._checks if lo)

    def remove(self, name: str) -> None:
        """Remove the check named ``name`` (``ConfigError`` if there is none)."""
        if name not in self.names:
            raise ConfigError(f"the app has no client check named {name!r}")
        self._checks = [c for c in self._checks if c[0] != name]
        self._all = tuple(c for _, c, _ in self._checks)
        self._local = tuple(c for _, c, lo in self._checks if lo)

    @property
    def names(self) -> list[str]:
        return [n for n, _, _ in self._checks]

    def __bool__(self) -> bool:
        return bool(self._all)

    def wants(self, principal: Principal) -> bool:
        """Whether any check applies to calls of ``principal``."""
        return bool(self._all if not principal.local else self._local)

    async def __call__(self, call: ClientCall) -> None:
        """Run the checks that apply, in order; the first to raise refuses the call."""
        for check in self._all if not call.principal.local else self._local:
            out = check(call)
            if inspect.isawaitable(out):
                await out


def scope_tenant(principal: Principal, tenant: str | None, action: str) -> str | None:
    """The tenant a call of ``principal`` acts in, given the ``tenant=`` it passed.

    The local principal acts where it says (None: every tenant, for reads). Any other acts
    in its own tenant: None means that one, and another is ``PermissionDenied`` (naming
    both tenants, not whether anything exists there). A tenant named empty, or holding a
    NUL or a lone surrogate, is ``InvalidInput`` whoever asks (an unset variable, not a
    tenant: it would list nothing, or be refused as another tenant's)."""
    if tenant is not None:
        check_identifier("tenant", tenant)
    if principal.local:
        return tenant
    if tenant is not None and tenant != principal.tenant:
        raise PermissionDenied(
            f"{principal.uid} may not {action.replace('_', ' ')} in tenant {tenant!r}: "
            f"it acts in tenant {principal.tenant!r} only"
        )
    return principal.tenant
