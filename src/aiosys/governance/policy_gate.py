"""``authorize``: the gate's interceptor that asks the policy engine before every effect.

It sits right after the effect log (a recorded effect, replayed, is never asked again: its
decision was made, and recorded, the first time) and the audit interceptor (which records
the decisions with the effect's own record, however it ends). Which action an effect is:

- ``model`` effects: ``call_model`` on each ``Model`` the call may reach (a direct
  ``models.call``: that model; a task: the plan's candidates and shadow that its routing
  would not exclude anyway, as the composition root resolves them). Every one must be
  allowed, since the router may fall back to any. The context holds the data's
  ``classification`` (``ctx.models.run(task, data, classification="confidential")``; none
  declared: ``unclassified``), the ``tenant``, and ``task`` / ``workflow`` when known;
- ``connector`` effects: ``use_connector`` on ``Connector::"<name>"`` with the attributes
  in ``params["connector"]`` (the connectors plane fills them in);
- ``child_start``: ``start_workflow`` on the child's ``Workflow`` (``high_risk`` when the
  child's workflow is declared so);
- steps: none, unless declared with ``declare_step(name, action, resource)``
  (e.g. ``export`` on a ``Dataset``); sleeps, signals and the other kernel effects: none.

The principal of a run's effect is the one that started the run (``runs.principal``, JSON of
the ``Principal``; none recorded: the local default); a direct effect's is the principal
bound around the call (``current_principal()``).

A workflow declared ``high_risk=True`` (``app.workflow``) is given to Cedar as the entity
``Workflow::"<name>"`` with ``high_risk: true``, beside the context's ``workflow`` reference
(``context has workflow && context.workflow has high_risk && context.workflow.high_risk``);
for other workflows the entity is left out (the attribute is absent). An effect let through
by a person's approval (``aiosys.humans.approval`` puts it in ``call.meta[APPROVAL]``) is
asked again with ``context.approval``: ``{task, principal, role, decided_at}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..errors import InvalidInput, PolicyDenied
from ..kernel.gate import EffectCall, Next
from ..kernel.principal import LOCAL, Principal, current_principal
from .policy import CLIENT_ACTIONS, PolicyEngine
from .policy_entities import (
    Entity,
    PolicyRequest,
    Record,
    Ref,
    attrs,
    classification,
    model_entity,
    principal_entity,
    resource_entity,
)

#: Resolves the model cards a ``model`` effect may reach (see the module docstring).
ModelResolver = Callable[[EffectCall], list[Any]]
#: Whether the workflow of that name is declared high-risk (any of its versions).
RiskResolver = Callable[[str], bool]
#: ``call.meta`` key: the ``context.approval`` record (a dict of ``task``, ``principal``,
#: ``role``, ``decided_at``) an approved effect is asked again with.
APPROVAL = "policy_approval"

_principals: dict[str | None, tuple[Principal, Entity, str]] = {}


def effect_principal(call: EffectCall) -> Principal:
    """Who makes this effect: the principal that started its run (``run.principal``, JSON
    text of a ``Principal``; absent or None: ``LOCAL``), or for a direct effect the
    principal bound around the call."""
    if call.run_execution is None:
        return current_principal()
    return _principal_and_entity(getattr(call.run_execution.run, "principal", None))[0]


def _principal_and_entity(text: str | None) -> tuple[Principal, Entity, str]:
    """The principal of a run's ``principal`` JSON, its entity and its uid (cached)."""
    found = _principals.get(text)
    if found is None:
        principal = LOCAL if not text else principal_from_json(text)
        found = (principal, principal_entity(principal), principal.uid)
        if len(_principals) > 10_000:
            _principals.clear()
        _principals[text] = found
    return found


def principal_from_json(text: str) -> Principal:
    """A ``Principal`` from its JSON (``id``, ``tenant``, ``kind``, ``roles``, ``attrs``,
    ``local``), as the run row keeps it."""
    data = json.loads(text)
    return Principal(
        id=str(data["id"]),
        tenant=str(data["tenant"]),
        kind=str(data.get("kind", "user")),
        roles=frozenset(data.get("roles", ())),
        attrs=data.get("attrs") or {},
        local=bool(data.get("local", False)),
    )


class Authorize:
    """The interceptor. ``models`` resolves the cards of a model effect (the composition
    root gives it: the governance layer does not import the model plane)."""

    def __init__(
        self,
        engine: PolicyEngine,
        models: ModelResolver | None = None,
        high_risk: RiskResolver | None = None,
    ) -> None:
        self.engine = engine
        self.models = models
        self.high_risk = high_risk
        self.default_classification = "unclassified"
        self._steps: dict[str, tuple[str, Entity]] = {}
        self._cards: dict[int, tuple[Any, Entity]] = {}
        self._bound: dict[int, tuple[Principal, Entity]] = {}
        # (principal entity, action, resource, classification, task, tenant, workflow) ->
        # the request: a repeated effect reuses its request (built once, hashed once, found
        # in the decision cache by identity).
        self._requests: dict[tuple[Any, ...], PolicyRequest] = {}
        self._describe: dict[str, Callable[[EffectCall], list[tuple[str, Entity]]]] = {
            "model": self._model,
            "connector": self._connector,
            "child_start": self._child_start,
            "step": self._step,
        }

    def declare_step(
        self, name: str, action: str, resource: Entity | tuple[str, str, dict[str, Any]]
    ) -> None:
        """Check the step named ``name`` as ``action`` on ``resource`` (an ``Entity`` or
        ``(type, id, attributes)``) before each of its executions."""
        if isinstance(resource, tuple):
            resource = resource_entity(*resource)
        self._steps[name] = (action, resource)

    def describe(self, kind: str, fn: Callable[[EffectCall], list[tuple[str, Entity]]]) -> None:
        """Check effects of ``kind``: ``fn(call)`` gives the ``(action, resource)`` pairs
        that must all be allowed."""
        self._describe[kind] = fn

    async def __call__(self, call: EffectCall, next: Next) -> Any:
        describe = self._describe.get(call.kind)
        if describe is None:
            return await next(call)
        asks = describe(call)
        if asks:
            self._authorize(call, asks)
        return await next(call)

    def allows(self, call: EffectCall, action: str, resource: Entity) -> bool:
        """Whether the effect's principal may do ``action`` on ``resource``, in the
        effect's context: decided, cached and heard (the audit log records it) like the
        effect's own decisions, but a denial is the answer False, not ``PolicyDenied``
        (redaction asks ``read_data`` this way before restoring pseudonyms); so is an
        unknown classification label (``InvalidInput`` for the effect itself)."""
        try:
            self._authorize(call, [(action, resource)])
        except (PolicyDenied, InvalidInput):
            return False
        return True

    def _authorize(self, call: EffectCall, asks: list[tuple[str, Entity]]) -> None:
        ex = call.run_execution
        if ex is None:
            principal = current_principal()
            known = self._bound.get(id(principal))
            if known is None or known[0] is not principal:
                if len(self._bound) > 10_000:
                    self._bound.clear()
                known = (principal, principal_entity(principal))  # kept: id() stays its own
                self._bound[id(principal)] = known
            entity, uid = known[1], principal.uid
            run_id, seq = None, None
            tenant, workflow = call.tenant, call.workflow
            risky = workflow is not None and self._risky(workflow)
        else:
            run = ex.run
            _, entity, uid = _principal_and_entity(getattr(run, "principal", None))
            run_id, seq = run.id, call.seq
            tenant, workflow = run.tenant, run.workflow
            risky = bool(getattr(ex.spec, "high_risk", False))
        params = call.params
        label, task = params.get("classification"), params.get("task")
        if label is not None and not isinstance(label, str):
            label = str(label)  # refused below as an unknown label, by its text
        if not isinstance(task, str):
            task = None
        approval = call.meta.get(APPROVAL)
        engine, requests = self.engine, self._requests
        for action, resource in asks:
            if approval is not None:  # asked once per effect: not kept
                request = self._request(
                    entity, action, resource, label, task, tenant, workflow, risky, approval
                )
            else:
                key = (entity, action, resource, label, task, tenant, workflow, risky)
                found = requests.get(key)
                if found is None:
                    found = self._request(
                        entity, action, resource, label, task, tenant, workflow, risky
                    )
                    if len(requests) >= 10_000:
                        requests.clear()
                    requests[key] = found
                request = found
            engine.authorize(
                request, principal=uid, tenant=tenant, run_id=run_id, seq=seq, call=call
            )

    def _request(
        self,
        entity: Entity,
        action: str,
        resource: Entity,
        label: Any,
        task: str | None,
        tenant: str,
        workflow: str | None,
        risky: bool = False,
        approval: dict[str, Any] | None = None,
    ) -> PolicyRequest:
        """The request of an effect: its context's pairs in name order (``attrs`` would sort
        them), and the high-risk ``Workflow`` entity when ``risky``. An unknown
        classification label is refused (``InvalidInput``)."""
        # A client action asked at the gate (a child's start_workflow) has the context the
        # App's client checks give it (tenant only, and an approval), as the schema declares.
        pairs: list[tuple[str, Any]] = []
        if approval is not None:
            pairs.append(("approval", Record(attrs(approval))))
        if action in CLIENT_ACTIONS:
            return PolicyRequest(entity, action, resource, (*pairs, ("tenant", tenant)))
        pairs.append(("classification", classification(label, self.default_classification)))
        if task is not None:
            pairs.append(("task", Ref("Task", task)))
        pairs.append(("tenant", tenant))
        extra: tuple[Entity, ...] = ()
        if workflow is not None:
            pairs.append(("workflow", Ref("Workflow", workflow)))
            if risky:
                extra = (_risky_workflow(workflow, tenant),)
        return PolicyRequest(entity, action, resource, tuple(pairs), extra)

    def _risky(self, workflow: str) -> bool:
        return self.high_risk is not None and self.high_risk(workflow)

    # ---- what each kind of effect asks ---------------------------------------------------

    def _model(self, call: EffectCall) -> list[tuple[str, Entity]]:
        if self.models is None:
            return []
        return [("call_model", self._card_entity(card)) for card in self.models(call)]

    def _card_entity(self, card: Any) -> Entity:
        found = self._cards.get(id(card))
        if found is None or found[0] is not card:
            if len(self._cards) > 1000:
                self._cards.clear()
            found = (card, model_entity(card))  # the card is kept: its id() stays its own
            self._cards[id(card)] = found
        return found[1]

    def _connector(self, call: EffectCall) -> list[tuple[str, Entity]]:
        values = call.params.get("connector") or {}
        return [("use_connector", resource_entity("Connector", call.name, values))]

    def _child_start(self, call: EffectCall) -> list[tuple[str, Entity]]:
        workflow = str(call.params.get("workflow", call.name))
        if self._risky(workflow):
            return [("start_workflow", _risky_workflow(workflow, call.tenant))]
        return [("start_workflow", resource_entity("Workflow", workflow, {"tenant": call.tenant}))]

    def _step(self, call: EffectCall) -> list[tuple[str, Entity]]:
        declared = self._steps.get(call.name)
        return [] if declared is None else [declared]


def _risky_workflow(name: str, tenant: str) -> Entity:
    """The ``Workflow`` entity of a workflow declared high-risk."""
    return resource_entity("Workflow", name, {"tenant": tenant, "high_risk": True})
