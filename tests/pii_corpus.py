"""The shipped synthetic documents with labelled personal data (``tests/data/pii/*.json``),
and recall over them (tests/unit/test_pii_recall.py, bench/redact.py).

Each file holds ``text``, ``entities`` (``{"type", "text"}``: every occurrence of that text
in the document is personal data of that type; an occurrence inside a longer labelled one
of the same type counts once, as the longer) and ``decoys`` (text that looks like personal
data of that type but is not, such as card numbers that fail the Luhn check). The documents
and every name, address and number in them are made up; card numbers are the networks'
published test numbers, IBANs the registries' examples.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent / "data" / "pii"


@dataclass(frozen=True)
class Doc:
    name: str
    text: str
    labels: list[tuple[str, int, int]]  # (type, start, end), in order
    decoys: list[tuple[str, int, int]]


def _spans(text: str, items: list[dict[str, str]]) -> list[tuple[str, int, int]]:
    spans = set()
    for item in items:
        at = text.find(item["text"])
        assert at >= 0, f"labelled text not in the document: {item}"
        while at >= 0:
            spans.add((item["type"], at, at + len(item["text"])))
            at = text.find(item["text"], at + 1)
    inside = {
        s for s in spans for o in spans if o != s and o[0] == s[0] and o[1] <= s[1] <= s[2] <= o[2]
    }
    return sorted(spans - inside, key=lambda s: (s[1], s[2]))


def load() -> list[Doc]:
    docs = []
    for path in sorted(DOCS.glob("*.json")):
        data = json.loads(path.read_text())
        text = data["text"]
        docs.append(
            Doc(path.stem, text, _spans(text, data["entities"]), _spans(text, data["decoys"]))
        )
    return docs


@dataclass
class Recall:
    """Labelled occurrences found (a finding of the same type covering all of it), by type;
    the ones missed, and the decoys flagged."""

    found: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    missed: list[tuple[str, str, str]] = field(default_factory=list)  # (doc, type, text)
    decoys_flagged: list[tuple[str, str, str]] = field(default_factory=list)

    def ratio(self, entity: str) -> float:
        return self.found.get(entity, 0) / self.total[entity]


def recall(docs: Sequence[Doc], findings: Sequence[Sequence[Any]]) -> Recall:
    """Recall of ``findings`` (per document, objects with ``type``, ``start``, ``end``)."""
    out = Recall()
    for doc, found in zip(docs, findings, strict=True):
        for entity, start, end in doc.labels:
            out.total[entity] = out.total.get(entity, 0) + 1
            if any(f.type == entity and f.start <= start and end <= f.end for f in found):
                out.found[entity] = out.found.get(entity, 0) + 1
            else:
                out.missed.append((doc.name, entity, doc.text[start:end]))
        for entity, start, end in doc.decoys:
            if any(f.start < end and start < f.end for f in found):
                out.decoys_flagged.append((doc.name, entity, doc.text[start:end]))
    return out
