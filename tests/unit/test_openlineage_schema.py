"""The OpenLineage export validates against the OpenLineage JSON Schema (spec 2-0-2 and the
facet schemas, vendored in tests/data/openlineage), every kind of event and facet it makes;
and the validation refuses what the spec refuses (so a pass means something)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from openlineage.client.facet_v2 import (
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
)
from openlineage.client.serde import Serde
from tests.integration.openlineage_schema import (
    CORE,
    JOB_FACETS,
    RUN_FACETS,
    schemas,
    validate_event,
)

from aiosys.governance.lineage_graph import EffectLineage, Human, RunLineage
from aiosys.governance.lineage_openlineage import events

H = "ab" * 32  # a content hash
T0 = 1_741_082_400.0  # 2025-03-04T10:00:00Z


def lineage() -> RunLineage:
    """A run with every kind of effect the export maps: a step, a model call with its
    policy decision, a failed one, a person's decision, a child run."""
    child = RunLineage(
        run_id="22222222-2222-4222-8222-222222222222",
        workflow="count",
        version="1",
        tenant="A",
        status="failed",
        parent_id="11111111-1111-4111-8111-111111111111",
        input=H,
        result=None,
        result_from=[],
        effects=[],
        created_at=T0 + 3,
        finished_at=T0 + 4,
    )
    policy = {
        "decision": "allow",
        "action": "call_model",
        "resource": 'Model::"m"',
        "policies": ["same-tenant-effects"],
        "policy_version": "abc",
    }
    effects = [
        EffectLineage(1, "step", "ocr", "ok", {"path": H}, H, started_at=T0, finished_at=T0 + 1),
        EffectLineage(
            2,
            "model",
            "summarize",
            "ok",
            {"input": H},
            H,
            sources={"input": [1]},
            model="m@3",
            task="summarize@2",
            policies=[policy],
            started_at=T0 + 1,
            finished_at=T0 + 2,
        ),
        EffectLineage(
            3,
            "model",
            "translate",
            "error",
            {"input": H},
            None,
            error="PolicyDenied: no",
            started_at=T0 + 2,
            finished_at=T0 + 2.5,
        ),
        EffectLineage(
            4,
            "human_task",
            "review",
            "ok",
            {"data": H},
            H,
            human=Human("approve", "alice", T0 + 2.7, role="paralegal", comment="fine"),
            started_at=T0 + 2.5,
            finished_at=T0 + 2.8,
        ),
        EffectLineage(
            5,
            "child_start",
            "count",
            "ok",
            {"input": H},
            None,
            started_at=T0 + 2.9,
            finished_at=T0 + 3,
            child=child,
        ),
        EffectLineage(6, "human_task", "sign-off", "pending", {"data": H}, None, started_at=T0 + 5),
    ]
    return RunLineage(
        run_id="11111111-1111-4111-8111-111111111111",
        workflow="intake",
        version="1",
        tenant="A",
        status="succeeded",
        parent_id=None,
        input=H,
        result=H,
        result_from=[2],
        effects=effects,
        created_at=T0,
        finished_at=T0 + 6,
    )


def exported() -> list[dict[str, Any]]:
    return [json.loads(Serde.to_json(e)) for e in events(lineage())]


def test_every_exported_event_validates_against_the_spec_and_its_facet_schemas() -> None:
    found = exported()
    for event in found:
        validate_event(event)
    run_facets = {k for e in found for k in e["run"].get("facets", {})}
    job_facets = {k for e in found for k in e["job"].get("facets", {})}
    # Every facet the export makes was validated, the spec's against their own schemas.
    assert set(RUN_FACETS) <= run_facets and set(JOB_FACETS) <= job_facets
    assert {"aiosys_effect", "aiosys_model", "aiosys_policy", "aiosys_human"} <= run_facets
    assert {e["eventType"] for e in found} == {"START", "COMPLETE", "FAIL"}


def test_the_vendored_schemas_are_the_versions_the_client_names() -> None:
    classes = {
        "ParentRunFacet": parent_run.ParentRunFacet,
        "ProcessingEngineRunFacet": processing_engine_run.ProcessingEngineRunFacet,
        "ErrorMessageRunFacet": error_message_run.ErrorMessageRunFacet,
        "JobTypeJobFacet": job_type_job.JobTypeJobFacet,
    }
    for name, cls in classes.items():
        assert cls._get_schema() == f"{schemas()[name]['$id']}#/$defs/{name}"
    assert schemas()["OpenLineage"]["$id"] == CORE


def _broken(change: Any) -> dict[str, Any]:
    event = copy.deepcopy(next(e for e in exported() if "errorMessage" in e["run"]["facets"]))
    change(event)
    return event


NOMINAL = {"_producer": "urn:x", "_schemaURL": f"{CORE}#/$defs/RunFacet", "nominalStartTime": "x"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e["run"].update(runId="run-1"), "'run-1' is not a 'uuid'"),
        (lambda e: e.update(eventTime="yesterday"), "'yesterday' is not a 'date-time'"),
        (lambda e: e.update(producer="not a uri"), "'not a uri' is not a 'uri'"),
        (lambda e: e.update(eventType="DONE"), "'DONE' is not one of"),
        (lambda e: e["job"].pop("name"), "'name' is a required property"),
        (
            lambda e: e["run"]["facets"]["parent"].pop("_producer"),
            "'_producer' is a required property",
        ),
        (lambda e: e["run"]["facets"]["parent"].pop("job"), "/parent: 'job' is a required"),
        (
            lambda e: e["run"]["facets"]["errorMessage"].pop("programmingLanguage"),
            "'programmingLanguage' is a required property",
        ),
        (
            lambda e: e["job"]["facets"]["jobType"].pop("integration"),
            "'integration' is a required property",
        ),
        (
            lambda e: e["run"]["facets"]["parent"].update(
                _schemaURL="https://openlineage.io/spec/facets/1-0-0/ParentRunFacet.json"
            ),
            "1-0-0/ParentRunFacet",
        ),
        (lambda e: e["run"]["facets"].update(nominalTime=NOMINAL), "'nominalTime' has no schema"),
    ],
)
def test_the_validation_refuses_what_the_spec_refuses(change: Any, message: str) -> None:
    with pytest.raises(AssertionError, match=re.escape(message)):
        validate_event(_broken(change))
