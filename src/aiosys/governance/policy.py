"""The policy engine: Cedar decides, the cache remembers, listeners hear every decision.

``PolicyEngine.authorize(request)`` answers from the decision cache (keyed by the request
and the policy version) or asks Cedar, tells every decision listener (allow and deny: the
audit log subscribes with ``listen``), and raises ``PolicyDenied`` naming the deciding
policies and the version when the answer is no: ``ApprovalRequired`` when every deciding
policy forbids only until a person approves (``@approval``: ``policy_approval``). The
gate's ``authorize`` interceptor (``policy_gate``) and the App's client checks
(``check_client``) call it.

Which directory: ``App(policies_dir=...)``, else ``AIOSYS_POLICIES_DIR`` (empty: none), else
``./policies`` when it exists. No directory, no engine: nothing is installed and nothing
costs anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cedarpy

from ..errors import ApprovalRequired, PolicyDenied
from ..kernel.principal import Principal
from .policy_approval import Approval
from .policy_cache import DecisionCache, Verdict
from .policy_entities import PolicyRequest, attrs, principal_entity, resource_entity
from .policy_files import PolicyInfo, PolicySet, PolicySource

log = logging.getLogger("aiosys.policy")

#: The App's client actions and the entity type of their resource.
CLIENT_ACTIONS = {
    "start_workflow": "Workflow",
    "signal_run": "Run",
    "cancel_run": "Run",
    "resume_run": "Run",
    "complete_task": "HumanTask",
}


@dataclass(slots=True)  # not frozen: one is made per decision, and a frozen one costs 5x
class Decision:
    """One policy decision, as listeners (the audit log) receive it (listeners must not
    change it).

    ``principal`` is the principal's uid (``user:acme/alice``), ``resource`` the Cedar uid
    (``Model::"gpt-4o"``), ``decision`` ``allow`` or ``deny``, ``policies`` the ids of the
    deciding policies, ``policy_version`` the set's hash; ``run_id`` and ``seq`` name the
    effect (None for a direct effect or a client action); ``time`` is Unix seconds;
    ``errors`` are policies Cedar skipped because they failed to evaluate. ``call`` is the
    ``EffectCall`` being authorized, if any (``call.also_write`` commits with its record)."""

    principal: str
    tenant: str
    action: str
    resource: str
    decision: str
    policies: tuple[str, ...]
    policy_version: str
    run_id: str | None
    seq: int | None
    time: float
    errors: tuple[str, ...] = ()
    cached: bool = False
    call: Any = field(default=None, compare=False, repr=False)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


Listener = Callable[[Decision], None]


@dataclass(frozen=True)
class Explanation:
    """What ``aiosys policy check`` prints: the verdict and the deciding policies' text."""

    request: PolicyRequest
    verdict: Verdict
    policy_version: str
    policies: list[PolicyInfo]
    approval: Approval | None = None  # a denial a person's approval lifts: who approves


class PolicyEngine:
    """Decides requests against a ``PolicySource``'s set in force, with a bounded cache."""

    def __init__(
        self,
        source: PolicySource,
        *,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.cache = DecisionCache(cache_size)
        self.clock = clock
        self._listeners: list[Listener] = []
        self._version = ""
        # id(principal) -> (principal, its entity, its client requests by shape): a client
        # repeating a call reuses its request (found in the decision cache by identity).
        self._clients: dict[int, tuple[Principal, Any, dict[Any, PolicyRequest]]] = {}
        source.on_change.append(self._changed)

    @classmethod
    def from_dir(cls, directory: str | Path, **kw: Any) -> PolicyEngine:
        """An engine on ``directory``, loaded now (blocking; ``PolicyFileError`` if broken)."""
        poll = kw.pop("poll_interval", 2.0)
        source = PolicySource(directory, poll_interval=poll)
        engine = cls(source, **kw)
        source.load()
        return engine

    def _changed(self, policies: PolicySet) -> None:
        self._version = policies.version
        self.cache.clear()

    @property
    def policies(self) -> PolicySet:
        return self.source.current

    @property
    def version(self) -> str:
        return self.source.current.version

    # ---- listeners -------------------------------------------------------------------------

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(decision)`` for every decision, allow or deny, cached or not, on
        the deciding thread, before the effect proceeds or ``PolicyDenied`` is raised. A
        listener that raises fails the effect (the audit log must not lose a record).
        Returns the function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # ---- deciding --------------------------------------------------------------------------

    def decide(self, request: PolicyRequest) -> tuple[Verdict, bool]:
        """Cedar's verdict on ``request`` under the set in force, and whether it came from
        the cache."""
        verdict, cached, _ = self._decide(request)
        return verdict, cached

    def _decide(self, request: PolicyRequest) -> tuple[Verdict, bool, str]:
        """``decide``, and the version of the set that decided."""
        source = self.source
        source.poll()
        policies = source.current
        version = policies.version
        key = (request, version)
        found = self.cache.get(key)
        if found is not None:
            return found, True, version
        verdict = evaluate(policies, request)
        self.cache.put(key, verdict)
        return verdict, False, version

    def authorize(
        self,
        request: PolicyRequest,
        *,
        principal: str,
        tenant: str,
        run_id: str | None = None,
        seq: int | None = None,
        call: Any = None,
    ) -> Decision:
        """Decide, tell the listeners, and raise ``PolicyDenied`` on a denial
        (``ApprovalRequired`` when a person's approval lifts it)."""
        verdict, cached, version = self._decide(request)
        decision = Decision(
            principal=principal,
            tenant=tenant,
            action=request.action,
            resource=request.resource.uid,
            decision="allow" if verdict.allowed else "deny",
            policies=verdict.policies,
            policy_version=version,
            run_id=run_id,
            seq=seq,
            time=self.clock(),
            errors=verdict.errors,
            cached=cached,
            call=call,
        )
        for listener in self._listeners:
            listener(decision)
        if not verdict.allowed:
            raise denial(decision, *self.source.current.approval(verdict.policies))
        return decision

    async def check_client(
        self, action: str, principal: Principal, resource_attrs: Mapping[str, Any]
    ) -> None:
        """The check of the App's client actions (``start_workflow``, ``signal_run``,
        ``cancel_run``, ``resume_run``, ``complete_task``): ``resource_attrs`` holds
        ``workflow`` (for a run ``run_id``, for a human task ``task_id``), ``tenant`` and any
        further attributes. ``PolicyDenied`` if denied."""
        try:
            type_ = CLIENT_ACTIONS[action]
        except KeyError:
            known = ", ".join(CLIENT_ACTIONS)
            raise ValueError(f"unknown client action {action!r} (known: {known})") from None
        values = dict(resource_attrs)
        tenant = str(values.get("tenant") or principal.tenant)
        values["tenant"] = tenant
        if type_ == "Workflow":
            rid = str(values.pop("workflow", ""))
        elif type_ == "HumanTask":
            rid = str(values.pop("task_id", ""))
        else:
            rid = str(values.pop("run_id", ""))
        values = {k: v for k, v in values.items() if k in _CLIENT_ATTRS[type_]}
        client = self._clients.get(id(principal))
        if client is None or client[0] is not principal:
            if len(self._clients) >= 1024:
                self._clients.clear()
            client = (principal, principal_entity(principal), {})  # kept: id() stays its own
            self._clients[id(principal)] = client
        _, entity, requests = client
        try:
            key: Any = (action, type_, rid, tuple(sorted(values.items())))
            request = requests.get(key)
        except TypeError:  # an attribute value that does not hash: not kept
            key, request = None, None
        if request is None:
            request = PolicyRequest(
                entity, action, resource_entity(type_, rid, values), attrs({"tenant": tenant})
            )
            if key is not None and len(requests) < 1024:
                requests[key] = request
        self.authorize(request, principal=principal.uid, tenant=tenant)

    def explain(self, request: PolicyRequest) -> Explanation:
        """The verdict on ``request`` (never cached) and the text of the deciding policies."""
        policies = self.source.current
        verdict = evaluate(policies, request)
        infos = [policies.policies[p] for p in verdict.policies if p in policies.policies]
        approval = None if verdict.allowed else policies.approval(verdict.policies)[0]
        return Explanation(request, verdict, policies.version, infos, approval)


_CLIENT_ATTRS = {
    "Workflow": {"tenant", "version", "high_risk"},
    "Run": {"tenant", "workflow", "status"},
    "HumanTask": {"tenant", "workflow", "name", "role", "status"},
}


def evaluate(policies: PolicySet, request: PolicyRequest) -> Verdict:
    """Ask Cedar (no cache)."""
    result = cedarpy.is_authorized(
        request.cedar(), policies.cedar, request.entities_json(), policies.schema
    )
    diagnostics = result.diagnostics
    return Verdict(result.allowed, tuple(sorted(diagnostics.reasons)), tuple(diagnostics.errors))


def denial(
    decision: Decision, approval: Approval | None = None, no_approval: str = ""
) -> PolicyDenied:
    """The error of a denial: ``ApprovalRequired`` when ``approval`` lifts it, else
    ``PolicyDenied`` (``no_approval``: why the approvals its policies ask cannot lift it)."""
    about: dict[str, Any] = {
        "action": decision.action,
        "resource": decision.resource,
        "principal": decision.principal,
        "policies": decision.policies,
        "policy_version": decision.policy_version,
    }
    head = f"{decision.action} on {decision.resource} by {decision.principal}"
    if approval is not None and not decision.errors:
        return ApprovalRequired(
            f"{head}: forbidden until a person with the role {approval.role} approves it "
            f"(asked by {', '.join(approval.policies)}; policy set "
            f"{decision.policy_version}); only a workflow's effect can wait for an approval",
            role=approval.role,
            sla=approval.sla,
            escalate_to=approval.escalate_to,
            **about,
        )
    if decision.policies:
        why = "denied by " + ", ".join(decision.policies)
    else:
        why = "no policy permits it"
    if no_approval:
        why += f" ({no_approval})"
    if decision.errors:
        why += f" (policies that failed to evaluate: {'; '.join(decision.errors)})"
    return PolicyDenied(f"{head}: {why} (policy set {decision.policy_version})", **about)
