"""A run's lineage as OpenLineage run events (``openlineage-python``'s classes, spec 2-0-2).

The mapping, for a run of workflow ``W`` in tenant ``T``:

- **Namespace** ``aiosys/T`` for jobs and datasets alike: a tenant's lineage never shares a
  node with another's, even for equal content.
- **Datasets are values**, named by content: ``sha256:<hex>`` (``lineage_hash``). A value
  one effect produced and another took has one name, so consumers draw the edge.
- **The run** is a run of job ``W`` (its OpenLineage ``runId`` is the run's id): a ``START``
  event at its creation with its input's dataset, and when it has ended a ``COMPLETE``
  (succeeded), ``FAIL`` (failed, dead) or ``ABORT`` (cancelled) event at its end with its
  result's dataset. Facets: ``processing_engine`` (aiosys and its version), ``parent`` for
  a child run (the ``child_start`` effect that started it; ``root``: the top run), and the
  job's ``jobType`` (``BATCH``, ``AIOSYS``, ``WORKFLOW``).
- **Each effect** that takes or makes data (not ``now``, ``sleep``, ``child_result``: the
  child's own events carry its result) is a run of job ``W.<kind>.<name>``, its ``runId``
  derived from the run's id and the effect's number (the same on every export): ``START`` at
  its start, ``COMPLETE`` or ``FAIL`` at its end (a parked one, such as an open human task,
  has only ``START``). Inputs: the dataset of each input value, and those of the values it
  was found to come from (the run's input, earlier outputs: ``lineage_graph``'s sources);
  output: its output's dataset (a ``child_start``'s is its child's input, not the child's
  id). Facets: ``parent`` (the run), ``errorMessage`` for a failure, and aiosys's own run
  facets, whose ``_schemaURL`` is the spec's ``RunFacet`` (they are plain run facets):
  ``aiosys_effect`` (number, kind, name, status, input hashes by name), ``aiosys_model``
  (``model``: card ``id@version``; ``task``: contract ``name@version``; ``document``:
  ``sha256:<hex>`` of the bytes of a document file the call read),
  ``aiosys_policy`` (the decisions: policies and policy set version) and ``aiosys_human``
  (a person's decision: action, decided_by, decided_at, role, comment).
"""

from __future__ import annotations

import datetime as dt
import uuid
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    JobFacet,
    RunFacet,
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
)

from .lineage_graph import EffectLineage, RunLineage


def _version() -> str:
    try:
        return version("aiosys")
    except PackageNotFoundError:  # a source tree that is not installed
        return "0"


#: What the events name as their producer (a URI), unless told otherwise.
PRODUCER = f"urn:aiosys:{_version()}"
# Effect run ids: UUID 5 of "<run id>:<seq>" in this namespace.
_EFFECT_IDS = uuid.UUID("3c2f5a1e-7d4b-4e8a-9b61-0f2d8c4a7e55")
_UNEXPORTED = frozenset({"now", "sleep", "child_result"})
_ENDED = {
    "succeeded": RunState.COMPLETE,
    "failed": RunState.FAIL,
    "dead": RunState.FAIL,
    "cancelled": RunState.ABORT,
}


@attr.define
class AiosysEffectRunFacet(RunFacet):
    """The effect an OpenLineage run stands for."""

    seq: int
    kind: str
    name: str
    status: str
    inputs: dict[str, str | None] = attr.field(factory=dict)


@attr.define
class AiosysModelRunFacet(RunFacet):
    """The model card (``id@version``) that answered a model call, its task contract
    (``name@version``) and the document file it read (``sha256:<hex>`` of its bytes)."""

    model: str | None = attr.field(default=None)
    task: str | None = attr.field(default=None)
    document: str | None = attr.field(default=None)


@attr.define
class AiosysPolicyRunFacet(RunFacet):
    """The policy decisions made for an effect (each: ``decision``, ``action``,
    ``resource``, ``policies``, ``policy_version``)."""

    decisions: list[dict[str, Any]] = attr.field(factory=list)


@attr.define
class AiosysHumanRunFacet(RunFacet):
    """A person's decision behind an effect."""

    action: str | None = attr.field(default=None)
    decided_by: str | None = attr.field(default=None)
    decided_at: str | None = attr.field(default=None)
    role: str | None = attr.field(default=None)
    comment: str | None = attr.field(default=None)


def namespace(tenant: str) -> str:
    """The OpenLineage namespace of a tenant's jobs and datasets."""
    return f"aiosys/{tenant}"


def dataset_name(h: str) -> str:
    """The OpenLineage dataset name of a value's hash."""
    return f"sha256:{h}"


def effect_run_id(run_id: str, seq: int) -> str:
    """The OpenLineage ``runId`` of effect ``seq`` of run ``run_id``."""
    return str(uuid.uuid5(_EFFECT_IDS, f"{run_id}:{seq}"))


def events(lineage: RunLineage, *, producer: str = PRODUCER) -> list[RunEvent]:
    """The run events of ``lineage`` and its child runs (see the module docstring), in
    time order (a run's ``START`` before its effects')."""
    out: list[tuple[float, int, RunEvent]] = []
    _run_events(lineage, None, (lineage.workflow, lineage.run_id), producer, out)
    out.sort(key=lambda t: (t[0], t[1]))
    return [e for _, _, e in out]


def _time(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


def _run_events(
    run: RunLineage,
    parent: tuple[str, str] | None,
    root: tuple[str, str],
    producer: str,
    out: list[tuple[float, int, RunEvent]],
) -> None:
    """Append the events of ``run`` and its effects (and children) to ``out``; ``parent``:
    the (job name, runId) of the ``child_start`` that started it."""
    ns = namespace(run.tenant)
    facets: dict[str, RunFacet] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=_version(), name="aiosys", producer=producer
        )
    }
    if parent is not None:
        facets["parent"] = _parent(ns, parent, root, producer)
    job = Job(namespace=ns, name=run.workflow, facets=_job_facets("WORKFLOW", producer))
    this = Run(runId=run.run_id, facets=facets)
    inputs = [] if run.input is None else [InputDataset(namespace=ns, name=dataset_name(run.input))]
    order = len(out)
    out.append(
        (
            run.created_at,
            order,
            RunEvent(
                eventType=RunState.START,
                eventTime=_time(run.created_at),
                run=this,
                job=job,
                inputs=inputs,
                producer=producer,
            ),
        )
    )
    by_seq = {e.seq: e for e in run.effects}
    for e in run.effects:
        if e.kind not in _UNEXPORTED:
            _effect_events(run, e, by_seq, (run.workflow, run.run_id), root, producer, out)
    ended = _ENDED.get(run.status)
    if ended is not None:
        at = run.finished_at if run.finished_at is not None else run.created_at
        outputs = (
            [OutputDataset(namespace=ns, name=dataset_name(run.result))]
            if run.result is not None
            else []
        )
        out.append(
            (
                at,
                len(out),
                RunEvent(
                    eventType=ended,
                    eventTime=_time(at),
                    run=this,
                    job=job,
                    inputs=inputs,
                    outputs=outputs,
                    producer=producer,
                ),
            )
        )


def _effect_events(
    run: RunLineage,
    e: EffectLineage,
    by_seq: dict[int, EffectLineage],
    parent: tuple[str, str],
    root: tuple[str, str],
    producer: str,
    out: list[tuple[float, int, RunEvent]],
) -> None:
    ns = namespace(run.tenant)
    name = f"{run.workflow}.{e.kind}.{e.name}"
    this_id = effect_run_id(run.run_id, e.seq)
    facets: dict[str, RunFacet] = {
        "parent": _parent(ns, parent, root, producer),
        "aiosys_effect": AiosysEffectRunFacet(
            seq=e.seq,
            kind=e.kind,
            name=e.name,
            status=e.status,
            inputs=dict(e.inputs),
            producer=producer,
        ),
    }
    if e.model is not None or e.task is not None:
        document = None if e.document is None else dataset_name(e.document)
        facets["aiosys_model"] = AiosysModelRunFacet(
            model=e.model, task=e.task, document=document, producer=producer
        )
    if e.policies:
        facets["aiosys_policy"] = AiosysPolicyRunFacet(
            decisions=list(e.policies), producer=producer
        )
    if e.human is not None:
        h = e.human
        at = None if h.decided_at is None else _time(h.decided_at)
        facets["aiosys_human"] = AiosysHumanRunFacet(
            action=h.action,
            decided_by=h.decided_by,
            decided_at=at,
            role=h.role,
            comment=h.comment,
            producer=producer,
        )
    if e.error is not None:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=e.error, programmingLanguage="python", producer=producer
        )
    job = Job(namespace=ns, name=name, facets=_job_facets(e.kind.upper(), producer))
    this = Run(runId=this_id, facets=facets)
    names: list[str] = [h for h in e.inputs.values() if h is not None]
    for sources in e.sources.values():
        for source in sources:
            if source == "input":
                if run.input is not None:
                    names.append(run.input)
            elif isinstance(source, int) and source in by_seq:
                produced = by_seq[source].output
                if produced is not None:
                    names.append(produced)
    inputs = [InputDataset(namespace=ns, name=dataset_name(h)) for h in dict.fromkeys(names)]
    started = e.started_at if e.started_at is not None else run.created_at
    out.append(
        (
            started,
            len(out),
            RunEvent(
                eventType=RunState.START,
                eventTime=_time(started),
                run=this,
                job=job,
                inputs=inputs,
                producer=producer,
            ),
        )
    )
    if e.status == "pending" or e.finished_at is None:
        return
    produced_hash = e.output
    if e.kind == "child_start" and e.child is not None:
        produced_hash = e.child.input
    outputs = (
        [OutputDataset(namespace=ns, name=dataset_name(produced_hash))]
        if produced_hash is not None and e.status == "ok"
        else []
    )
    out.append(
        (
            e.finished_at,
            len(out),
            RunEvent(
                eventType=RunState.COMPLETE if e.status == "ok" else RunState.FAIL,
                eventTime=_time(e.finished_at),
                run=this,
                job=job,
                inputs=inputs,
                outputs=outputs,
                producer=producer,
            ),
        )
    )
    if e.child is not None:
        _run_events(e.child, (name, this_id), root, producer, out)


def _parent(
    ns: str, parent: tuple[str, str], root: tuple[str, str], producer: str
) -> parent_run.ParentRunFacet:
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=parent[1]),
        job=parent_run.Job(namespace=ns, name=parent[0]),
        root=parent_run.Root(
            run=parent_run.RootRun(runId=root[1]),
            job=parent_run.RootJob(namespace=ns, name=root[0]),
        ),
        producer=producer,
    )


def _job_facets(kind: str, producer: str) -> dict[str, JobFacet]:
    return {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="AIOSYS", jobType=kind, producer=producer
        )
    }


__all__ = [
    "PRODUCER",
    "AiosysEffectRunFacet",
    "AiosysHumanRunFacet",
    "AiosysModelRunFacet",
    "AiosysPolicyRunFacet",
    "dataset_name",
    "effect_run_id",
    "events",
    "namespace",
]
