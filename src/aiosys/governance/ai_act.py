"""AI Act evidence for one workflow over a period: the record-keeping extract and a draft of
the technical documentation, both tied to a signed audit checkpoint.

Regulation (EU) 2024/1689 (the AI Act), Article 12(1), asks high-risk AI systems to record
events automatically over their lifetime; Article 12(3), for the systems of Annex III point
1(a), names the minimum: (a) the period of each use (start and end date and time), (b) the
reference database the input data was checked against, (c) the input data for which the
search led to a match, (d) the natural persons involved in verifying the results, as
Article 14(5) requires. ``AiAct.export`` reads them back from what aiosys records anyway,
for every run of a workflow created in ``[since, until)``:

- **a use is a run** (its child runs are part of it): ``start`` its creation, ``end`` its
  end (None while it runs), and its status (Art. 12(3)(a));
- **reference data** (``reference``): the model cards (``id@version``) and task contracts
  (``name@version``) that answered its model calls (Art. 12(3)(b));
- **input data by content hash** (``input``, and each effect's ``inputs``: SHA-256 of RFC
  8785 JSON, ``lineage_hash``): every input, not only those that matched, a superset of
  Art. 12(3)(c); the values themselves stay in the store;
- **who verified results** (``verified_by``): each person's decision of a human task (or an
  approval kept on an effect): the principal, role, action and time (Art. 12(3)(d), Art.
  14(5)); comments are left out;
- ``policy_versions``: the versions of the Cedar policy set that decided its effects.

``Evidence`` holds three texts, written by ``Evidence.write`` into one directory:

1. ``ai-act-extract.jsonl``: JSON Lines, a header (``type`` ``aiosys-ai-act-extract``,
   the workflow, the period, the policy set in force and the versions seen, the audit
   checkpoint cited with its payload and signature, the key, the audit extract's SHA-256)
   then one ``{"type": "use", ...}`` line per use, oldest first;
2. ``audit-extract.jsonl``: the audit log's own extract (``audit_export``) of the period's
   records, up to the cited checkpoint, with the checkpoints that anchor them: each use
   cites its records there by position and hash (``audit``; each effect's ``audit_seq``,
   each person's decision's ``audit_seq``);
3. ``annex-iv.md``: a draft of the technical documentation in the shape of Annex IV points
   1 to 3, built from the model cards, task contracts and policies in force
   (``ai_act_annex``), citing the same checkpoint and policy version.

The checkpoint cited is the first signed one at or after the last record of the period (one
is signed now if none is: the head moved since the last). ``aiosys audit verify --file
ai-act-extract.jsonl`` checks the whole (``ai_act_verify``); ``aiosys audit verify`` checks the
log the checkpoint belongs to. Records written after that checkpoint (a run still open) are
not cited. The extract is held in memory while it is made (some KB per use).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InvalidInput, UnknownWorkflow
from .ai_act_annex import AnnexInput, annex_iv
from .ai_act_verify import FORMAT
from .audit_checkpoint import Checkpoint
from .audit_export import export as audit_extract
from .audit_keys import key_id, public_pem
from .audit_record import micros
from .lineage_graph import EffectLineage, RunLineage
from .lineage_record import KERNEL_WAITS

if TYPE_CHECKING:
    from ..kernel import App
    from ..store import Store
    from ..store.base import RunRow
    from .audit import AuditLog
    from .lineage import Lineage

REGULATION = "Regulation (EU) 2024/1689"
EXTRACT_FILE = "ai-act-extract.jsonl"
AUDIT_FILE = "audit-extract.jsonl"
ANNEX_FILE = "annex-iv.md"
#: What each part of a use answers (the header says it too).
ARTICLES = {
    "12(3)(a)": "start, end: the period of each use",
    "12(3)(b)": "reference: the model cards and task contracts the inputs were checked against",
    "12(3)(c)": "input, effects[].inputs: every input by content hash (sha256 of RFC 8785 JSON)",
    "12(3)(d)": "verified_by: the natural persons who verified results (Article 14(5))",
}
_PAGE = 500  # runs per read
_SIGN_TRIES = 3

#: ``describe(models, tasks)``: what the catalog says of the model cards (``id@version``)
#: and task contracts (``name@version``) used, as plain dicts (``ai_act_annex``). The model
#: layer above governance provides it (``aiosys.App``).
Describe = Callable[
    [Sequence[str], Sequence[str]], tuple[list[dict[str, Any]], list[dict[str, Any]]]
]


@dataclass(frozen=True, slots=True)
class Evidence:
    """The AI Act evidence of one workflow over a period (see the module docstring):
    ``header`` and ``uses`` (the extract's lines), ``audit`` (the audit extract's text),
    ``annex_iv`` (Markdown) and ``checkpoint`` (the one cited)."""

    header: dict[str, Any]
    uses: list[dict[str, Any]]
    audit: str
    annex_iv: str
    checkpoint: Checkpoint

    @property
    def extract(self) -> str:
        """The record-keeping extract as JSON Lines."""
        lines = [json.dumps(self.header, ensure_ascii=False)]
        lines += [json.dumps(u, ensure_ascii=False) for u in self.uses]
        return "\n".join(lines) + "\n"

    def write(self, directory: str | Path) -> dict[str, Path]:
        """Write the three files into ``directory`` (made if missing); their paths by kind
        (``extract``, ``audit``, ``annex_iv``). ``OSError`` when it cannot."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        paths = {
            "extract": root / EXTRACT_FILE,
            "audit": root / AUDIT_FILE,
            "annex_iv": root / ANNEX_FILE,
        }
        paths["audit"].write_text(self.audit, encoding="utf-8")
        paths["extract"].write_text(self.extract, encoding="utf-8")
        paths["annex_iv"].write_text(self.annex_iv, encoding="utf-8")
        return paths


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def iso(t: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC (None for None)."""
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


class AiAct:
    """The AI Act evidence of one app: ``app.ai_act`` (see the module docstring)."""

    def __init__(self, app: App, describe: Describe | None = None) -> None:
        self._app = app
        self._describe = describe

    async def export(
        self,
        workflow: str,
        *,
        since: dt.datetime,
        until: dt.datetime,
        tenant: str | None = None,
        public_key: str | Path | None = None,
    ) -> Evidence:
        """The evidence of the runs of ``workflow`` created from ``since`` to before
        ``until`` (a time without a zone is UTC), in ``tenant`` (None: the caller's, or
        every tenant for the local operator). Scoped as ``AuditLog.export``: a principal
        that is not the local one needs the role admin (``export_audit``) and exports its
        own tenant only (``PermissionDenied``). ``InvalidInput`` for an empty period,
        ``UnknownWorkflow`` for a workflow the app does not declare and that never ran
        there, ``ConfigError`` when the audit log is off or no checkpoint covers the period
        and this process cannot sign one (not the log's key)."""
        since, until = _utc(since), _utc(until)
        if since >= until:
            raise InvalidInput(
                f"the period must end after it starts: from {since.isoformat()} to "
                f"{until.isoformat()}"
            )
        app = self._app
        scope = await app.authorize("export_audit", tenant=tenant, workflow=workflow)
        await app._ready()
        log = _audit_log(app)
        if not log.enabled:
            raise ConfigError(
                "the audit log is off (audit=False, AIOSYS_AUDIT=off or [audit] enabled = "
                "false): the AI Act evidence cites its signed records"
            )
        store = app.store
        if workflow not in app.workflows:
            seen = await store.fetch(
                "ai_act_workflow_seen", {"workflow": workflow, "tenant": scope}
            )
            if not seen:
                where = "" if scope is None else f" in tenant {scope!r}"
                raise UnknownWorkflow(
                    f"unknown workflow {workflow!r}: the app does not declare it and it never "
                    f"ran{where}"
                )
        runs = await self._runs(workflow, since.timestamp(), until.timestamp(), scope)
        lineage = _lineage(app)
        uses = [await lineage.show(r.id, tenant=scope) for r in runs]
        # The audit records of the uses: from the period's start to the last use's end (a
        # run's records are stamped from its creation to its end), up to a checkpoint.
        now = store.clock()
        ends = [u.finished_at if u.finished_at is not None else now for u in uses]
        since_us = micros(since.timestamp())
        until_us = max([micros(until.timestamp()), *(micros(e) + 1 for e in ends)])
        cited = await _covering(log, store, since_us, until_us)
        key = log.verify_key(public_key)  # after signing: the embedded default's key exists
        out = io.StringIO()
        counts = await audit_extract(
            store, key, out, since=since_us, until=until_us, tenant=scope, upto=cited.seq
        )
        audit_text = out.getvalue()
        records, cited = _read_audit(audit_text, cited)
        engine = getattr(app, "policy", None)
        policies = None if engine is None else engine.source.current
        lines = [_use(u, records) for u in uses]
        header = {
            "type": FORMAT,
            "version": 1,
            "regulation": REGULATION,
            "articles": ARTICLES,
            "workflow": workflow,
            "tenant": scope,
            "from": since.isoformat(),
            "to": until.isoformat(),
            "exported_at": iso(now),
            "uses": len(lines),
            "persons": sorted({p["person"] for u in lines for p in u["verified_by"]}),
            "policy_version": None if policies is None else policies.version,
            "policy_versions": sorted({v for u in lines for v in u["policy_versions"]}),
            "checkpoint": _cited(cited),
            "key": key_id(key),
            "public_key": public_pem(key),
            "audit_extract": {"file": AUDIT_FILE, "sha256": sha256_text(audit_text), **counts},
            "annex_iv": ANNEX_FILE,
        }
        models = sorted({m for u in lines for m in u["reference"]["models"]})
        tasks = sorted({t for u in lines for t in u["reference"]["tasks"]})
        cards, contracts = self._describe(models, tasks) if self._describe else ([], [])
        evidence = Evidence(header, lines, audit_text, "", cited)
        annex = annex_iv(
            AnnexInput(
                header=header,
                uses=lines,
                extract_file=EXTRACT_FILE,
                extract_sha256=sha256_text(evidence.extract),
                specs=_specs(app, workflow),
                cards=cards,
                contracts=contracts,
                policies=policies,
                gate=list(app.gate.names),
                store=str(getattr(store, "dialect", type(store).__name__)),
            )
        )
        return Evidence(header, lines, audit_text, annex, cited)

    async def _runs(
        self, workflow: str, since: float, until: float, tenant: str | None
    ) -> list[RunRow]:
        from ..store.common import run_row

        out: list[RunRow] = []
        after_at, after_id = -1.0, ""
        while True:
            params = {
                "workflow": workflow,
                "since": since,
                "until": until,
                "tenant": tenant,
                "after_at": after_at,
                "after_id": after_id,
                "limit": _PAGE,
            }
            page = [run_row(r) for r in await self._app.store.fetch("ai_act_runs", params)]
            out += page
            if len(page) < _PAGE:
                return out
            after_at, after_id = page[-1].created_at, page[-1].id


def _utc(t: dt.datetime) -> dt.datetime:
    if not isinstance(t, dt.datetime):
        raise InvalidInput(f"since and until must be datetimes, not {type(t).__name__}")
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _audit_log(app: App) -> AuditLog:
    from .audit import AuditLog, AuditSettings

    found = getattr(app, "audit", None)
    if isinstance(found, AuditLog):
        return found
    return AuditLog(lambda: app.store, AuditSettings.resolve())


def _lineage(app: App) -> Lineage:
    from .lineage import Lineage, LineageSettings

    found = getattr(app, "lineage", None)
    if isinstance(found, Lineage):
        return found
    return Lineage(app, LineageSettings())  # reading needs no settings


async def _covering(log: AuditLog, store: Store, since: int, until: int) -> Checkpoint:
    """The first signed checkpoint at or after the last record stamped in ``[since,
    until)`` (microseconds; with none there, at or after the head), signing one now if none
    is. ``ConfigError`` when this process cannot sign (not the log's key)."""
    for _ in range(_SIGN_TRIES):
        heads = await store.fetch("audit_seal", {})
        head = int(heads[0]["seq"]) if heads and heads[0]["seq"] is not None else 0
        span = (await store.fetch("audit_span", {"since": since, "until": until}))[0]
        target = head if span["last"] is None else int(span["last"])
        for row in await store.fetch("audit_checkpoints", {}):
            cp = Checkpoint.parse(row["payload"], row["signature"])
            if cp.seq >= target and cp.seq > 0:
                return cp
        try:
            signed = await log.checkpointer.checkpoint(force=True)
        except ConfigError as exc:
            raise ConfigError(
                f"no signed audit checkpoint covers record {target} yet, and this process "
                f"cannot sign one: {exc}"
            ) from None
        if signed is not None and signed.seq >= target:
            return signed
    raise ConfigError(
        "no signed audit checkpoint covers the period's records: the audit log is empty, or "
        "other processes kept signing first; try again"
    )


def _read_audit(
    text: str, signed: Checkpoint
) -> tuple[dict[str, list[dict[str, Any]]], Checkpoint]:
    """The audit extract's records by run id (``seq``, ``hash``, ``body`` decoded), and the
    checkpoint it ends with that covers its last record (``signed`` when it holds none)."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    header, rest = lines[0], lines[1:]
    by_run: dict[str, list[dict[str, Any]]] = {}
    cps = []
    for item in rest:
        if item["type"] == "checkpoint":
            cps.append(Checkpoint.parse(item["payload"], item["signature"]))
        elif item["type"] == "record":
            body = json.loads(item["body"])
            run_id = body.get("run_id")
            if isinstance(run_id, str):
                by_run.setdefault(run_id, []).append(
                    {"seq": item["seq"], "hash": item["hash"], "body": body}
                )
    last = int(header["last"])
    covering = [cp for cp in cps if cp.seq >= last] if last > 0 else []
    return by_run, covering[0] if covering else signed


def _cited(cp: Checkpoint) -> dict[str, Any]:
    return {
        "n": cp.n,
        "seq": cp.seq,
        "hash": cp.hash,
        "at": iso(cp.at / 1_000_000),
        "key": cp.key,
        "payload": cp.payload,
        "signature": cp.signature,
    }


def _tag(h: str | None) -> str | None:
    return None if h is None else f"sha256:{h}"


def _use(run: RunLineage, records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One use's line: the run and its child runs (see the module docstring)."""
    effects: list[dict[str, Any]] = []
    verified: list[dict[str, Any]] = []
    models: set[str] = set()
    tasks: set[str] = set()
    versions: set[str] = set()
    cited: list[dict[str, Any]] = []
    for r in run.walk():
        mine = records.get(r.run_id, [])
        cited += [
            {
                "seq": rec["seq"],
                "hash": rec["hash"],
                "action": rec["body"].get("action"),
                "run_id": r.run_id,
                "effect": rec["body"].get("effect_seq"),
            }
            for rec in mine
        ]
        for e in r.effects:
            if e.kind in KERNEL_WAITS:
                continue
            if e.model is not None:
                models.add(e.model)
            if e.task is not None:
                tasks.add(e.task)
            versions |= {str(p["policy_version"]) for p in e.policies if p.get("policy_version")}
            entry = _effect(r.run_id, e, mine)
            effects.append(entry)
            if e.human is not None and e.human.decided_by is not None:
                verified.append(_person(r.run_id, e, mine))
    return {
        "type": "use",
        "run_id": run.run_id,
        "workflow": run.workflow,
        "version": run.version,
        "tenant": run.tenant,
        "status": run.status,
        "parent_id": run.parent_id,
        "start": iso(run.created_at),
        "end": iso(run.finished_at),
        "input": _tag(run.input),
        "result": _tag(run.result),
        "reference": {"models": sorted(models), "tasks": sorted(tasks)},
        "effects": effects,
        "verified_by": verified,
        "policy_versions": sorted(versions),
        "audit": sorted(cited, key=lambda c: int(c["seq"])),
    }


def _effect(run_id: str, e: EffectLineage, records: list[dict[str, Any]]) -> dict[str, Any]:
    own = next(
        (
            rec
            for rec in records
            if rec["body"].get("effect_seq") == e.seq and rec["body"].get("action") == e.kind
        ),
        None,
    )
    return {
        "run_id": run_id,
        "seq": e.seq,
        "kind": e.kind,
        "name": e.name,
        "status": e.status,
        "start": iso(e.started_at),
        "end": iso(e.finished_at),
        "inputs": {name: _tag(h) for name, h in e.inputs.items()},
        "output": _tag(e.output),
        "model": e.model,
        "task": e.task,
        "audit_seq": None if own is None else own["seq"],
    }


def _person(run_id: str, e: EffectLineage, records: list[dict[str, Any]]) -> dict[str, Any]:
    """A person's decision of effect ``e``, with the ``complete_task`` record that attests
    it (its principal is the person's full id, ``user:tenant/id``), if there is one."""
    human = e.human
    assert human is not None and human.decided_by is not None
    record = next(
        (
            rec
            for rec in records
            if rec["body"].get("action") == "complete_task"
            and rec["body"].get("outcome") == "ok"
            and rec["body"].get("effect_seq") == e.seq
            and str(rec["body"].get("principal", "")).rpartition("/")[2] == human.decided_by
        ),
        None,
    )
    return {
        "person": human.decided_by if record is None else record["body"]["principal"],
        "role": human.role,
        "action": human.action,
        "at": iso(human.decided_at),
        "task": e.name,
        "run_id": run_id,
        "effect": e.seq,
        "audit_seq": None if record is None else record["seq"],
    }


def _specs(app: App, workflow: str) -> list[dict[str, Any]]:
    """The versions of ``workflow`` the app declares: version, queue, docstring."""
    return [
        {"version": v, "queue": spec.queue, "doc": inspect.getdoc(spec.fn) or ""}
        for v, spec in app.workflows.get(workflow, {}).items()
    ]


__all__ = ["ANNEX_FILE", "AUDIT_FILE", "EXTRACT_FILE", "FORMAT", "AiAct", "Evidence"]
