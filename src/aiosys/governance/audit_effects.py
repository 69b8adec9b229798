"""The audit record of a run's effect, rendered from a template (the hot path).

Every audited effect of a run writes one record, and most of its body is the same from one
effect to the next: the same step of the same workflow, started by the same principal,
allowed by the same policies. ``EffectRecords`` keeps that part as text, keyed by what it is
made of, and fills in only what changes per effect (attempt, whether the decision came from
the cache, effect number, outcome, run id). The result is byte for byte what
``AuditRecord(...).params()`` gives for the same record (``tests/unit/test_audit_effects.py``
checks it on varied records): the body stays RFC 8785 JSON, because the keys that change
sort before or after the template's parts:

    {"action":..,"decision":..,"detail":{["attempt":N,]["cached":B,]<rest of detail>},
     "effect_seq":N,"outcome":..,"policies":[..],"policy_version":..,"principal":..,
     "resource":..,"run_id":..}

(``attempt`` and ``cached`` sort before every other key ``detail`` may hold: ``model``,
``policy_action``, ``policy_resource``, ``redacted``, ``task``, ``version``, ``workflow``.)
"""

from __future__ import annotations

from json.encoder import encode_basestring as _str
from typing import Any

from ..store._text import storable
from .audit_record import Scalar, _json, content_digest

#: A template: the body's text before the per-effect ``detail`` keys, the rest of ``detail``,
#: and the text between ``outcome`` and ``run_id``'s value (each made storable once).
_Template = tuple[str, str, str]

#: ``detail`` keys the model plane leaves in ``call.meta["record"]`` that a record keeps.
KEPT = ("task", "model", "version", "redacted")
MAX_TEMPLATES = 4096


class EffectRecords:
    """Renders the ``audit_append`` parameters of run effects (see the module docstring)."""

    def __init__(self) -> None:
        self._templates: dict[tuple[Any, ...], _Template] = {}

    def params(
        self,
        *,
        principal: str,
        tenant: str,
        kind: str,
        name: str,
        workflow: str | None,
        kept: dict[str, Scalar],
        attempt: int | None,
        decision: Any,
        outcome: str,
        run_id: str,
        seq: int,
        at: int,
    ) -> dict[str, Any]:
        """``{tenant, at, body, digest}`` of the record of effect ``seq`` of ``run_id``
        (``decision``: the policy ``Decision`` folded in, or None)."""
        if decision is None:
            folded: tuple[Any, ...] | None = None
            cached = None
        else:
            folded = (
                decision.decision,
                decision.policies,
                decision.policy_version,
                decision.action,
                decision.resource,
            )
            cached = bool(getattr(decision, "cached", False))
        key = (kind, name, principal, workflow, folded, tuple(kept.items()) if kept else ())
        template = self._templates.get(key)
        if template is None:
            template = self._template(principal, kind, name, workflow, kept, folded)
        head, detail, tail = template
        varying = []
        if attempt is not None:
            varying.append(f'"attempt":{int(attempt)}')
        if cached is not None:
            varying.append('"cached":true' if cached else '"cached":false')
        varying.append(detail)
        body = (
            f'{head}{",".join(varying)}}},"effect_seq":{int(seq)},'
            f'"outcome":{storable(_str(outcome))},{tail}"run_id":{storable(_str(run_id))}}}'
        )
        tenant = storable(tenant)
        return {
            "tenant": tenant,
            "at": at,
            "body": body,
            "digest": content_digest(tenant, at, body),
        }

    def _template(
        self,
        principal: str,
        kind: str,
        name: str,
        workflow: str | None,
        kept: dict[str, Scalar],
        folded: tuple[Any, ...] | None,
    ) -> _Template:
        detail: dict[str, Scalar] = {"workflow": workflow}
        detail.update(kept)
        verdict: str | None = None
        policies: tuple[str, ...] = ()
        version: str | None = None
        if folded is not None:
            verdict, policies, version = str(folded[0]), tuple(map(str, folded[1])), str(folded[2])
            detail["policy_action"] = str(folded[3])
            detail["policy_resource"] = str(folded[4])
        rest = ",".join(f"{_str(k)}:{_json(detail[k])}" for k in sorted(detail))
        head = f'{{"action":{_str(kind)},"decision":{_json(verdict)},"detail":{{'
        tail = (
            f'"policies":[{",".join(map(_str, policies))}],'
            f'"policy_version":{_json(version)},"principal":{_str(principal)},'
            f'"resource":{_str(name)},'
        )
        template = (storable(head), storable(rest), storable(tail))
        if len(self._templates) >= MAX_TEMPLATES:
            self._templates.clear()
        key = (kind, name, principal, workflow, folded, tuple(kept.items()) if kept else ())
        self._templates[key] = template
        return template
