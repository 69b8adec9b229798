"""The effect-record template renders exactly what ``AuditRecord.params()`` gives (its body
is the RFC 8785 JSON of the record), whatever the record holds, on a first use of its
template and on a reuse."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import pytest

from aiosys.governance.audit_effects import EffectRecords
from aiosys.governance.audit_record import AuditRecord, canonical_json


@dataclass(frozen=True)
class FakeDecision:
    decision: str
    policies: tuple[str, ...]
    policy_version: str
    action: str
    resource: str
    cached: bool


NAMES = ["inc", 'a "quoted" step', "naïve ünïcode", "nul\x00here", "lone\ud800surrogate", ""]
DECISIONS = [
    None,
    FakeDecision("allow", (), "v1", "read_data", 'Dataset::"x"', True),
    FakeDecision("deny", ("p-1", 'p "2"'), "abc123", "export", 'Dataset::"y\x00"', False),
]
KEPT = [{}, {"task": "summarize", "model": "m-1", "version": "3"}, {"model": "m\ud800"}]


def expected(
    *, principal, tenant, kind, name, workflow, kept, attempt, decision, outcome, run_id, seq, at
) -> dict:
    detail: dict = {"workflow": workflow, **kept}
    if attempt is not None:
        detail["attempt"] = attempt
    verdict = version = None
    policies: tuple[str, ...] = ()
    if decision is not None:
        verdict, policies, version = decision.decision, decision.policies, decision.policy_version
        detail.update(
            policy_action=decision.action, policy_resource=decision.resource, cached=decision.cached
        )
    return AuditRecord(
        principal=principal,
        tenant=tenant,
        action=kind,
        resource=name,
        outcome=outcome,
        decision=verdict,
        policies=policies,
        policy_version=version,
        run_id=run_id,
        effect_seq=seq,
        at=at,
        detail=detail,
    ).params()


@pytest.mark.parametrize("name,decision,kept", list(itertools.product(NAMES, DECISIONS, KEPT)))
def test_the_template_renders_the_record_byte_for_byte(name, decision, kept):
    records = EffectRecords()
    for attempt, outcome, seq, run_id, workflow, tenant in [
        (None, "ok", 1, "run-1", "wf", "acme"),
        (3, "error:TransientError", 17, "run-\x002", None, "t\ud800"),  # the template reused
        (1, 'error:"odd"', 2, "run-3", "wf", "acme"),
    ]:
        kw = dict(
            principal="user:acme/alice",
            tenant=tenant,
            kind="step",
            name=name,
            workflow=workflow,
            kept=kept,
            attempt=attempt,
            decision=decision,
            outcome=outcome,
            run_id=run_id,
            seq=seq,
            at=1_700_000_000_000_001,
        )
        got = records.params(**kw)
        assert got == expected(**kw)


def test_the_body_is_canonical_json():
    records = EffectRecords()
    got = records.params(
        principal="service:b/s",
        tenant="b",
        kind="model",
        name="ask",
        workflow="w",
        kept={"model": "m", "task": "t"},
        attempt=2,
        decision=DECISIONS[1],
        outcome="ok",
        run_id="r",
        seq=4,
        at=5,
    )
    body = json.loads(got["body"])
    assert canonical_json(body) == got["body"]
    assert body["detail"] == {
        "attempt": 2,
        "cached": True,
        "model": "m",
        "task": "t",
        "workflow": "w",
        "policy_action": "read_data",
        "policy_resource": 'Dataset::"x"',
    }
