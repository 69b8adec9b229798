"""Validates exported OpenLineage events against the specification's own JSON Schemas.

The schemas are the OpenLineage project's, vendored unchanged in ``tests/data/openlineage``
(spec 2-0-2 and the facet schemas of the facets the export uses; see the README there), and
``jsonschema`` (draft 2020-12) validates with them, formats included: ``uuid``, and
``date-time`` and ``uri`` through ``rfc3339-validator`` and ``rfc3986-validator`` (without
them jsonschema skips those formats silently: ``FORMATS`` checks they are there). An event
is validated as a ``RunEvent``; each standard facet also against its own schema, and its
``_schemaURL`` must name that schema; any other facet must be aiosys's own (``aiosys_``
prefix), a plain run facet of the core schema (``RunFacet``: ``_producer`` and
``_schemaURL`` required, as the export's module docstring says)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "openlineage"
CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
#: Facet key -> the facet schema's file (its ``$defs`` name) for the facets the export uses.
RUN_FACETS = {
    "parent": "ParentRunFacet",
    "processing_engine": "ProcessingEngineRunFacet",
    "errorMessage": "ErrorMessageRunFacet",
}
JOB_FACETS = {"jobType": "JobTypeJobFacet"}
#: Formats that must be checked, not skipped (each needs its library).
FORMATS = frozenset({"uuid", "date-time", "uri"})
CHECKER = Draft202012Validator.FORMAT_CHECKER


@cache
def schemas() -> dict[str, dict[str, Any]]:
    """Every vendored schema by its ``$id``; facet schemas also by their file's stem."""
    found: dict[str, dict[str, Any]] = {}
    for path in [SCHEMAS / "OpenLineage.json", *sorted((SCHEMAS / "facets").glob("*.json"))]:
        doc = json.loads(path.read_text(encoding="utf-8"))
        found[doc["$id"]] = doc
        found[path.stem] = doc
    return found


@cache
def registry() -> Registry:
    docs = {k: v for k, v in schemas().items() if k.startswith("https://")}
    return Registry().with_resources(
        (uri, Resource.from_contents(doc)) for uri, doc in docs.items()
    )


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, registry=registry(), format_checker=CHECKER)


def errors(schema: dict[str, Any], value: Any) -> list[str]:
    """What ``value`` breaks of ``schema``: one line per error, with its JSON path (for an
    ``anyOf`` or ``allOf`` that fails, the errors of its branches)."""
    out: list[str] = []

    def add(found: Iterable[ValidationError]) -> None:
        for e in found:
            if e.context:
                add(e.context)
            else:
                out.append(f"/{'/'.join(map(str, e.absolute_path))}: {e.message}")

    add(validator(schema).iter_errors(value))
    return sorted(set(out))


def validate_event(event: dict[str, Any]) -> None:
    """``AssertionError`` naming each place where ``event`` (decoded JSON) is not a valid
    OpenLineage run event of spec 2-0-2 with valid facets."""
    assert FORMATS <= set(CHECKER.checkers), "jsonschema cannot check these formats"
    broken = errors({"$ref": f"{CORE}#/$defs/RunEvent"}, event)
    assert not broken, broken
    assert event["schemaURL"] == f"{CORE}#/$defs/RunEvent", event["schemaURL"]
    for where, known in (("run", RUN_FACETS), ("job", JOB_FACETS)):
        facets = event[where].get("facets") or {}
        for key, facet in facets.items():
            if key not in known:
                assert key.startswith("aiosys_"), f"{where} facet {key!r} has no schema here"
                assert facet["_schemaURL"] == f"{CORE}#/$defs/RunFacet", (key, facet)
                continue
            doc = schemas()[known[key]]
            assert facet["_schemaURL"] == f"{doc['$id']}#/$defs/{known[key]}", (key, facet)
            # The facet file's own schema is that of a facets object holding it by its key.
            broken = errors(doc, {key: facet})
            assert not broken, (key, broken)
