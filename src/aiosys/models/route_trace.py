"""What happened during one routed call (``Trace``), kept in the model effect's record.

The router fills a ``Trace`` as it tries candidates; ``Trace.record`` is what the model
plane leaves on the effect (``EffectCall.meta["record"]``, stored with the effect's record
in the same write): the model that served, its usage and cost, and every attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .catalog import ModelCard
from .types import ModelResponse


@dataclass(slots=True)
class Attempt:
    """One try of one deployment through the deployment chain, from ``start`` to ``end``
    (Unix seconds, the clock of the effect records); ``error`` (``"Type: message"``, ``open
    breaker``, ``invalid output: ...``) and ``error_type`` (the error's class name) when it
    failed."""

    card: ModelCard
    start: float
    end: float
    error: str | None = None
    error_type: str | None = None

    def record(self) -> dict[str, Any]:
        """As kept in the effect's record: ``model`` (the deployment, ``id@version``),
        ``error`` (None: it served the call), ``model_id``, ``provider`` and ``kind`` (the
        card's), ``start`` and ``end``, and ``error_type`` when it failed."""
        card = self.card
        rec: dict[str, Any] = {"model": card.key, "error": self.error, "model_id": card.id}
        rec |= {"provider": card.provider, "kind": card.kind}
        rec |= {"start": self.start, "end": self.end}
        if self.error_type is not None:
            rec["error_type"] = self.error_type
        return rec


@dataclass(slots=True)
class Trace:
    """What happened during one routed call; the effect timeline shows it."""

    task: str | None = None
    task_version: str | None = None  # the task contract's version (``TaskContract.version``)
    # SHA-256 of the bytes of the document file the request named (``ModelRequest.document``),
    # taken for lineage when it is on: which scan an OCR call read, whatever its path.
    document: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # candidate -> reason
    warnings: list[str] = field(default_factory=list)  # e.g. a soft budget passed
    card: ModelCard | None = None
    response: ModelResponse | None = None
    output: Any = None

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"task": self.task} if self.task else {}
        if self.task and self.task_version is not None:
            rec["task_version"] = self.task_version
        if self.document is not None:
            rec["document_sha256"] = self.document
        r, card = self.response, self.card
        if r is not None and card is not None:
            rec |= {
                "model": card.id,
                "version": card.version,
                "deployment": card.key,
                "provider": card.provider,
                "kind": card.kind,
                "usage": r.usage.model_dump(),
                "cost": r.cost,
                "latency_ms": r.latency_ms,
                "cached": r.cached,
            }
            if r.finish_reason:
                rec["finish_reason"] = r.finish_reason
        rec["attempts"] = [a.record() for a in self.attempts]
        if self.skipped:
            rec["skipped"] = dict(self.skipped)
        if self.warnings:
            rec["warnings"] = list(self.warnings)
        return rec
