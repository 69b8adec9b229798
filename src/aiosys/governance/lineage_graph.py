"""A run's lineage read back: what produced its result, down to its input (``RunLineage``).

Built from the run's row and its effects' records (``lineage_record`` wrote the inputs'
hashes and the policy decisions into each record's ``meta``; the model plane wrote the model
card's id and version, the task contract's version and the SHA-256 of a document file the
call read there). Each effect is a node:
its inputs' hashes, its output's hash (computed here from the recorded output), the model
and task that answered it, the policy decisions behind it, a person's decision (a human
task's, or an approval kept on the effect), and its *sources*: where each input came from.

Sources are found by content: input ``x`` of effect ``n`` came from the run's input, or
from an earlier effect ``m``, when the value, or one of its members (a dict's value, a
list's item: text, lists and dicts, see ``lineage_hash``), equals what that produced or one
of its members: ``{"text": ocr_text}`` took the OCR step's output, ``{"text": s.summary}``
took a field of the model's. Equal content is the link: two values that happen to share a
member are linked by it. The run's result comes from the effects it was found to take
from, likewise. A
child run's result comes to its parent through the ``child_result`` effect, linked to the
``child_start`` that started it; the child's own lineage hangs under that ``child_start``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..store.base import EffectRow, RunRow
from .lineage_hash import PART, json_hash, value_keys
from .lineage_record import KEY

#: A source of an input: ``"input"`` (the run's input) or an earlier effect's number.
Source = int | str


@dataclass(frozen=True, slots=True)
class Human:
    """A person's decision behind an effect: a human task's outcome (``action``: approve,
    reject, edit, escalated), or an approval kept on the effect's record. ``decided_by``
    is a principal id (None when nobody decided: escalated); ``decided_at`` epoch seconds."""

    action: str | None
    decided_by: str | None
    decided_at: float | None
    role: str | None = None
    comment: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "role": self.role,
            "comment": self.comment,
        }


@dataclass(frozen=True, slots=True)
class EffectLineage:
    """One effect of a run, as lineage sees it. Hashes are 64 hex digits (SHA-256 of the
    value's RFC 8785 JSON: ``lineage_hash``), None when the value has none. ``inputs``:
    input name -> hash (empty when none were recorded: lineage was off, or the kind has
    none); ``sources``: input name -> where it came from; ``model``: ``id@version`` of the
    card that answered a model call, ``task``: ``name@version`` of its task contract;
    ``policies``: the decisions made for it (``decision``, ``action``, ``resource``,
    ``policies``, ``policy_version``); ``document``: for a model call that read a document
    file (an OCR scan), the SHA-256 of its bytes (``sha256sum``'s, not of JSON);
    ``child``: a ``child_start``'s child run."""

    seq: int
    kind: str
    name: str
    status: str
    inputs: dict[str, str | None]
    output: str | None
    sources: dict[str, list[Source]] = field(default_factory=dict)
    model: str | None = None
    task: str | None = None
    document: str | None = None
    policies: list[dict[str, Any]] = field(default_factory=list)
    human: Human | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    child: RunLineage | None = None
    recorded: bool = False  # a lineage entry was written with it (lineage was on)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "inputs": {k: _tag(v) for k, v in self.inputs.items()},
            "output": _tag(self.output),
            "sources": self.sources,
            "model": self.model,
            "task": self.task,
            "document": _tag(self.document),
            "policies": self.policies,
            "human": None if self.human is None else self.human.as_dict(),
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "child": None if self.child is None else self.child.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class RunLineage:
    """A run's lineage: its input's and result's hashes, the effects its result came from
    (``result_from``: effect numbers) and every effect (``effects``, in call order).
    ``truncated``: children past the depth or size limit were left out."""

    run_id: str
    workflow: str
    version: str
    tenant: str
    status: str
    parent_id: str | None
    input: str | None
    result: str | None
    result_from: list[int]
    effects: list[EffectLineage]
    created_at: float
    finished_at: float | None
    truncated: bool = False

    def effect(self, seq: int) -> EffectLineage:
        """The effect numbered ``seq`` (``KeyError`` if there is none)."""
        for e in self.effects:
            if e.seq == seq:
                return e
        raise KeyError(seq)

    def walk(self) -> list[RunLineage]:
        """This run and every child run under it, parents first."""
        out = [self]
        for e in self.effects:
            if e.child is not None:
                out.extend(e.child.walk())
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "version": self.version,
            "tenant": self.tenant,
            "status": self.status,
            "parent_id": self.parent_id,
            "input": _tag(self.input),
            "result": _tag(self.result),
            "result_from": self.result_from,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "truncated": self.truncated,
            "effects": [e.as_dict() for e in self.effects],
        }


def _tag(h: str | None) -> str | None:
    """A hash as shown outside: ``sha256:<hex>``."""
    return None if h is None else f"sha256:{h}"


class _Keys:
    """What a value is matched by: its own hash (shortened) and its members' (see the
    module docstring)."""

    __slots__ = ("keys",)

    def __init__(self, whole: str | None, parts: Sequence[str]) -> None:
        self.keys = frozenset(parts) | ({whole[:PART]} if whole is not None else frozenset())

    def fed_by(self, producer: _Keys) -> bool:
        return not self.keys.isdisjoint(producer.keys)


def build(
    run: RunRow,
    effects: Sequence[EffectRow],
    children: dict[str, RunLineage] | None = None,
    *,
    truncated: bool = False,
) -> RunLineage:
    """The lineage of ``run`` from its effects' records; ``children``: the lineage of the
    child runs it started, by run id (hung under their ``child_start``)."""
    children = children or {}
    run_input = _Keys(*value_keys(run.input))
    produced: list[tuple[int, _Keys]] = []  # (seq, keys of its output), in call order
    started: dict[str, int] = {}  # child run id -> the seq of its child_start
    nodes: list[EffectLineage] = []
    for e in sorted(effects, key=lambda e: e.seq):
        meta = _meta(e)
        found_entry = meta.get(KEY)
        entry: dict[str, Any] = found_entry if isinstance(found_entry, dict) else {}
        ins: dict[str, str | None] = dict(entry.get("in") or {})
        parts: dict[str, list[str]] = entry.get("parts") or {}
        sources: dict[str, list[Source]] = {}
        for name, h in ins.items():
            keys = _Keys(h, parts.get(name, ()))
            found: list[Source] = ["input"] if keys.fed_by(run_input) else []
            found += [seq for seq, out in produced if keys.fed_by(out)]
            if found:
                sources[name] = found
        output = None
        child = None
        if e.status == "ok" and e.kind == "child_start":
            child_id = _loads(e.output)
            if isinstance(child_id, str):
                started[child_id] = e.seq
                child = children.get(child_id)
        elif e.status == "ok":
            whole, members = value_keys(e.output)
            output = whole
            if e.kind not in ("now", "sleep"):
                produced.append((e.seq, _Keys(whole, members)))
        if e.kind == "child_result" and output is not None:
            links = [s for cid, s in started.items() if _result_of(children.get(cid)) == output]
            if links:
                sources["child"] = list(links)
        nodes.append(
            EffectLineage(
                seq=e.seq,
                kind=e.kind,
                name=e.name,
                status=e.status,
                inputs=ins,
                output=output,
                sources=sources,
                model=_model(meta),
                task=_task(meta),
                document=_str(meta.get("document_sha256")),
                policies=list(entry.get("policy") or []),
                human=human_of(e, meta),
                error=_error(e),
                started_at=e.started_at,
                finished_at=e.finished_at,
                child=child,
                recorded=bool(entry),
            )
        )
    result_hash, result_members = value_keys(run.result)
    result = _Keys(result_hash, result_members)
    result_from = [seq for seq, out in produced if result_hash is not None and result.fed_by(out)]
    return RunLineage(
        run_id=run.id,
        workflow=run.workflow,
        version=run.version,
        tenant=run.tenant,
        status=run.status,
        parent_id=run.parent_id,
        input=json_hash(run.input),
        result=result_hash,
        result_from=result_from,
        effects=nodes,
        created_at=run.created_at,
        finished_at=run.finished_at,
        truncated=truncated,
    )


def _result_of(child: RunLineage | None) -> str | None:
    return None if child is None else child.result


def _meta(e: EffectRow) -> dict[str, Any]:
    value = _loads(e.meta)
    return value if isinstance(value, dict) else {}


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _model(meta: dict[str, Any]) -> str | None:
    model, version = meta.get("model"), meta.get("version")
    if not isinstance(model, str) or version is None:
        return None
    return f"{model}@{version}"


def _task(meta: dict[str, Any]) -> str | None:
    task = meta.get("task")
    if not isinstance(task, str):
        return None
    version = meta.get("task_version")
    return task if version is None else f"{task}@{version}"


def _error(e: EffectRow) -> str | None:
    if e.status != "error" or not e.error:
        return None
    record = _loads(e.error)
    if isinstance(record, dict):
        kind = str(record.get("type", "?")).rpartition(".")[2]  # the class, not its module
        return f"{kind}: {record.get('message', '')}"
    return None


#: Keys of an effect's ``meta`` record that may hold a person's approval of it (issue 12,
#: human oversight: an effect let through once a principal approved it).
APPROVAL_KEYS = ("approval", "human")


def human_of(e: EffectRow, meta: dict[str, Any]) -> Human | None:
    """The person's decision behind effect ``e``: the output of a human task (kind
    ``human_task``: a ``Decision``), else an approval its record keeps under ``approval`` or
    ``human`` (``action``, ``decided_by``, ``decided_at``, ``role``, ``comment``)."""
    found: Any = None
    if e.kind == "human_task" and e.status == "ok":
        found = _loads(e.output)
    if not isinstance(found, dict) or "decided_at" not in found:
        for key in APPROVAL_KEYS:
            kept = meta.get(key)
            if isinstance(kept, dict) and kept.get("status") != "open":  # open: none yet
                found = kept
                break
        else:
            return None
    at = found.get("decided_at")
    return Human(
        action=_str(found.get("action")),
        decided_by=_str(found.get("decided_by")),
        decided_at=float(at) if isinstance(at, int | float) else None,
        role=_str(found.get("role")),
        comment=_str(found.get("comment")),
    )


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
