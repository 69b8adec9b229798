"""Checks an exported OpenLineage event by reading it back into openlineage-python's classes,
which the OpenLineage project generates from its JSON Schema (spec 2-0-2 and the facets' own
schemas): every field must be one the class declares (no unknown key), every required one
present, every value of the declared type, and the classes' validators must accept it (a
UUID ``runId``, an ISO 8601 ``eventTime`` with a time, URI ``producer`` and ``schemaURL``,
an ``eventType`` of the enum). Written back by the client's ``Serde``, the event must be
the same JSON. It is strict where the spec's schemas are open (no field a class does not
declare); ``openlineage_schema`` validates the same events against the schemas themselves."""

from __future__ import annotations

import datetime as dt
import json
import types
import typing
from enum import Enum
from typing import Any

import attr
from openlineage.client.event_v2 import RunEvent
from openlineage.client.facet_v2 import (
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
)
from openlineage.client.serde import Serde

from aiosys.governance import lineage_openlineage as ol

RUN_FACETS: dict[str, type] = {
    "parent": parent_run.ParentRunFacet,
    "processing_engine": processing_engine_run.ProcessingEngineRunFacet,
    "errorMessage": error_message_run.ErrorMessageRunFacet,
    "aiosys_effect": ol.AiosysEffectRunFacet,
    "aiosys_model": ol.AiosysModelRunFacet,
    "aiosys_policy": ol.AiosysPolicyRunFacet,
    "aiosys_human": ol.AiosysHumanRunFacet,
}
JOB_FACETS: dict[str, type] = {"jobType": job_type_job.JobTypeJobFacet}


def check_event(event: dict[str, Any]) -> RunEvent:
    """``event`` (decoded JSON) as a ``RunEvent``; ``AssertionError``, ``TypeError`` or
    ``ValueError`` naming the field when it is not a valid one."""
    obj = structure(RunEvent, event, "event")
    assert isinstance(obj, RunEvent)
    when = dt.datetime.fromisoformat(event["eventTime"])
    assert when.tzinfo is not None, "eventTime has no offset"
    assert json.loads(Serde.to_json(obj)) == event, "the event does not survive a round trip"
    return obj


def structure(cls: type, data: Any, where: str, facets: dict[str, type] | None = None) -> Any:
    assert isinstance(data, dict), f"{where}: an object is expected, not {data!r}"
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    known = set()
    for f in attr.fields(cls):
        known.add(f.name)
        if not f.init:
            if f.name in data:  # _schemaURL / schemaURL: the class's own
                assert data[f.name] == cls._get_schema(), (where, f.name, data[f.name])
            continue
        if f.name not in data:
            assert f.default is not attr.NOTHING, f"{where}: required field {f.name} is missing"
            continue
        kwargs[f.alias] = convert(hints[f.name], data[f.name], f"{where}.{f.name}")
    unknown = set(data) - known
    assert not unknown, f"{where}: fields the spec does not declare: {sorted(unknown)}"
    return cls(**kwargs)


def convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            assert type(None) in typing.get_args(hint), f"{where}: null is not allowed"
            return None
        errors = []
        for option in options:
            try:
                return convert(option, value, where)
            except (AssertionError, TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: {value!r} fits none of {hint}: {errors}")
    if origin is list:
        (item,) = typing.get_args(hint)
        assert isinstance(value, list), f"{where}: a list is expected"
        return [convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(hint)
        assert isinstance(value, dict), f"{where}: an object is expected"
        if where.endswith(".facets") and "run" in where.split(".")[-2]:
            return {
                k: structure(_facet(RUN_FACETS, k, where), v, f"{where}.{k}")
                for k, v in value.items()
            }
        if where.endswith(".facets") and "job" in where.split(".")[-2]:
            return {
                k: structure(_facet(JOB_FACETS, k, where), v, f"{where}.{k}")
                for k, v in value.items()
            }
        return {k: convert(item, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if attr.has(hint):
        return structure(hint, value, where)
    if hint is Any:
        return value
    if hint is float:
        assert isinstance(value, int | float) and not isinstance(value, bool), where
        return value
    if isinstance(hint, type):
        assert isinstance(value, hint), f"{where}: {hint.__name__} expected, not {value!r}"
    return value


def _facet(known: dict[str, type], key: str, where: str) -> type:
    assert key in known, f"{where}: facet {key!r} is not one the export defines"
    return known[key]
