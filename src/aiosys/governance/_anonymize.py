"""Replacing findings in text with Presidio's anonymizer (imported when a text has any).

The redactor decides each finding's replacement (a pseudonym, or the type's mask) in order of
appearance and removes overlaps first; the anonymizer does the replacing, with a ``custom``
operator per entity type that looks the replacement up by the text it replaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

from .pii import Finding


@cache
def _engine() -> AnonymizerEngine:
    return AnonymizerEngine()  # type: ignore[no-untyped-call]


def splice(text: str, findings: Sequence[Finding], replacements: Sequence[str]) -> str:
    """``text`` with each finding (none overlapping) replaced by its replacement (the same
    text of the same type always has the same replacement)."""
    by_type: dict[str, dict[str, str]] = {}
    for f, new in zip(findings, replacements, strict=True):
        by_type.setdefault(f.type, {})[text[f.start : f.end]] = new
    operators = {
        entity: OperatorConfig("custom", {"lambda": table.__getitem__})
        for entity, table in by_type.items()
    }
    results = [RecognizerResult(f.type, f.start, f.end, f.score) for f in findings]
    return str(_engine().anonymize(text, results, operators).text)
