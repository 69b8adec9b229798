"""A draft of the technical documentation of Regulation (EU) 2024/1689, Annex IV, as Markdown.

Annex IV lists what the technical documentation of a high-risk AI system (Article 11(1))
holds. aiosys can draft from what it knows of a workflow the parts a system's own records
answer, and marks the rest *to be completed by the provider*:

- point 1, a general description: (a) intended purpose and versions (the workflow's
  docstring and versions, the model cards' intended uses and owners), (b) the software and
  other AI systems it interacts with (the model cards: provider, external or not, data
  residency; the human task roles), (c) the versions of the software (aiosys, Python, the
  store, the model cards, task contracts and policy set); (d)-(h) are the provider's;
- point 2, the elements and their development: (a) third-party pre-trained systems (the
  cards), (b) the general logic (the effects the uses made, the task contracts' schemas
  and routing plans), (c) the architecture (the gate's interceptors, the store), (d)
  training data (the cards'), (e) the human oversight measures of Article 14 (the human
  tasks decided in the period, by role and person, and the Cedar policies in force), (g)
  validation and testing (the cards' evaluation metrics and known failure modes), (h)
  cybersecurity (the signed audit log, policies, redaction); (f) is the provider's;
- point 3, monitoring, functioning and control: limitations (failure modes, risk levels), the
  outcomes of the uses, the logs (the Article 12 extract this draft comes with);
- points 4 to 9 (performance metrics, the Article 9 risk management system, changes,
  standards, the declaration of conformity, post-market monitoring): the provider's.

The draft names the policy set's version and the audit checkpoint that the extract cites,
and the extract's SHA-256.
"""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .policy_files import PolicySet

TODO = "*To be completed by the provider.*"


@dataclass(frozen=True, slots=True)
class AnnexInput:
    """What the draft is built from: the extract's ``header`` and ``uses`` (``ai_act``), its
    file name and SHA-256, the workflow's declared versions (``specs``: version, queue,
    doc), the model cards and task contracts used (plain dicts from the model layer: a
    card's fields and ``used``, the ``id@version`` the uses named; a contract's ``name``,
    ``version``, ``used``, ``declared``, ``input``/``output`` field types, ``candidates``,
    ``strategy``, ``slo_p95_ms``, ``cost_cap``), the policy set in force, the gate's
    interceptors in order and the store's dialect."""

    header: dict[str, Any]
    uses: list[dict[str, Any]]
    extract_file: str
    extract_sha256: str
    specs: list[dict[str, Any]] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)
    contracts: list[dict[str, Any]] = field(default_factory=list)
    policies: PolicySet | None = None
    gate: list[str] = field(default_factory=list)
    store: str = ""


def annex_iv(a: AnnexInput) -> str:
    """The draft, one Markdown document ending with a newline."""
    h = a.header
    blocks = [
        f"# Technical documentation (draft): workflow `{h['workflow']}`",
        f"{h['regulation']}, Annex IV (technical documentation referred to in Article 11(1)), "
        "points 1 to 3, drafted by aiosys from the model cards, task contracts and policies "
        "in force and from the record-keeping extract (Article 12) of the period below. "
        f"What aiosys cannot know is marked {TODO}",
        _table(("Item", "Value"), _summary(a)),
        "## 1. General description of the AI system",
        "### 1(a) Intended purpose, provider and version",
        _purpose(a),
        "### 1(b) Interaction with hardware or software that is not part of the system",
        _interaction(a),
        "### 1(c) Versions of relevant software",
        _bullets(_versions(a)),
        "### 1(d)-(h) Forms placed on the market, hardware, user interface, instructions for use",
        TODO,
        "## 2. Detailed description of the elements of the AI system and of its development",
        "### 2(a) Pre-trained systems and tools provided by third parties",
        _third_parties(a),
        "### 2(b) Design specifications: the general logic",
        _logic(a),
        "### 2(c) System architecture",
        _architecture(a),
        "### 2(d) Data requirements: training data",
        _training(a),
        "### 2(e) Human oversight measures (Article 14)",
        _oversight(a),
        "### 2(f) Pre-determined changes",
        TODO,
        "### 2(g) Validation and testing",
        _validation(a),
        "### 2(h) Cybersecurity measures",
        _security(a),
        "## 3. Monitoring, functioning and control",
        _monitoring(a),
        "## 4-9. Performance metrics, risk management (Article 9), changes, harmonised "
        "standards, EU declaration of conformity, post-market monitoring (Article 72)",
        TODO,
    ]
    return "\n\n".join(b for b in blocks if b) + "\n"


def _summary(a: AnnexInput) -> list[tuple[str, str]]:
    h = a.header
    cp = h["checkpoint"]
    declared = ", ".join(s["version"] for s in a.specs) or "none in this app"
    policy = h["policy_version"]
    in_force = (
        "none installed"
        if policy is None
        else f"`{policy}` ({len(a.policies) if a.policies is not None else '?'} policies)"
    )
    seen = ", ".join(f"`{v}`" for v in h["policy_versions"]) or "none"
    tenant = "every tenant" if h["tenant"] is None else f"`{h['tenant']}`"
    return [
        ("Workflow", f"`{h['workflow']}` (versions declared: {declared})"),
        ("Period", f"{h['from']} to {h['to']} (tenant: {tenant})"),
        ("Uses in the period", str(h["uses"])),
        ("Policy set in force", in_force),
        ("Policy set versions that decided the uses", seen),
        (
            "Audit checkpoint",
            f"number {cp['n']}: signs records 1 to {cp['seq']} (head hash `{cp['hash']}`), "
            f"key `{cp['key']}`, signed at {cp['at']}",
        ),
        (
            "Record-keeping extract",
            f"`{a.extract_file}`, SHA-256 "
            f"`{a.extract_sha256}`; audit extract `{h['audit_extract']['file']}`, SHA-256 "
            f"`{h['audit_extract']['sha256']}`",
        ),
    ]


def _purpose(a: AnnexInput) -> str:
    parts = []
    docs = [s for s in a.specs if s["doc"]]
    for s in docs:
        parts.append(f"Workflow version {s['version']} (queue `{s['queue']}`):\n\n{s['doc']}")
    if not docs:
        parts.append(
            "The workflow states no purpose (it has no docstring, or is not declared by the "
            f"app this draft was made with). {TODO}"
        )
    uses = [f"{c['id']}: {u}" for c in a.cards for u in c.get("intended_use") or []]
    if uses:
        parts.append("Intended uses of the models it calls, from their cards:\n\n" + _bullets(uses))
    owners = sorted({str(c.get("owner")) for c in a.cards if c.get("owner")})
    if owners:
        parts.append("Owners of those models: " + ", ".join(owners) + ".")
    used = Counter(str(u["version"]) for u in a.uses)
    if used:
        parts.append(f"Uses in the period by version of the workflow: {_tally(used)}.")
    parts.append(f"Name of the provider: {TODO}")
    return "\n\n".join(parts)


def _interaction(a: AnnexInput) -> str:
    rows = [
        (
            f"`{c.get('used') or c['id']}`",
            str(c.get("provider", "")),
            str(c.get("provider_model") or c["id"]),
            "yes: data leaves the premises" if c.get("external") else "no",
            str(c.get("data_residency", "")),
            str(c.get("endpoint") or ""),
        )
        for c in a.cards
    ]
    parts = []
    if rows:
        head = ("Model", "Provider", "Provider model", "External", "Residency", "Endpoint")
        parts.append("AI systems it calls (its model cards):\n\n" + _table(head, rows))
    else:
        parts.append("No model call was made in the period, or no card describes the models.")
    roles = sorted({str(p["role"]) for u in a.uses for p in u["verified_by"] if p["role"]})
    if roles:
        parts.append(
            "People take part through the human task inbox (`aiosys tasks`, `GET /v1/tasks`), "
            "in the roles: " + ", ".join(f"`{r}`" for r in roles) + "."
        )
    return "\n\n".join(parts)


def _versions(a: AnnexInput) -> list[str]:
    lines = [
        f"aiosys {_aiosys_version()} on Python {platform.python_version()}",
        f"Store: {a.store or 'unknown'}",
    ]
    lines += [f"Model card `{c['id']}` version {c.get('version')}" for c in a.cards]
    for t in a.contracts:
        state = "" if t.get("declared") else " (not declared by this app)"
        lines.append(f"Task contract `{t['name']}` version {t.get('version')}{state}")
    if a.header["policy_version"] is not None:
        lines.append(f"Policy set version `{a.header['policy_version']}`")
    return lines


def _third_parties(a: AnnexInput) -> str:
    if not a.cards:
        return "No model card describes a model used in the period."
    blocks = []
    for c in a.cards:
        used = c.get("used")
        version_note = (
            f" (the uses named {used}; the catalog holds version {c.get('version')})"
            if used and used != f"{c['id']}@{c.get('version')}"
            else ""
        )
        desc = str(c.get("description") or "").strip() or "No description on its card."
        blocks.append(
            f"- `{c['id']}`{version_note}: {c.get('kind', 'model')} from {c.get('provider')}, "
            f"owner {c.get('owner', 'unknown')}. {' '.join(desc.split())}"
        )
    return "\n".join(blocks) + f"\n\nHow they were used, integrated or modified: {TODO}"


def _logic(a: AnnexInput) -> str:
    steps: dict[tuple[str, str], dict[str, Any]] = {}
    for u in a.uses:
        for e in u["effects"]:
            if e["run_id"] != u["run_id"]:
                continue  # a child run's effects: the child workflow's own logic
            s = steps.setdefault((e["kind"], e["name"]), {"uses": set(), "models": set()})
            s["uses"].add(u["run_id"])
            if e.get("model"):
                s["models"].add(f"{e['model']} (task {e.get('task')})")
    parts = []
    if steps:
        rows = [
            (kind, f"`{name}`", str(len(s["uses"])), ", ".join(sorted(s["models"])))
            for (kind, name), s in steps.items()
        ]
        parts.append(
            "The effects the uses made (each passes the gate: see 2(c)), in the order first "
            "seen:\n\n" + _table(("Kind", "Name", "Uses", "Models"), rows)
        )
    else:
        parts.append("No use in the period.")
    if a.contracts:
        contract_rows = [
            (
                f"`{t['name']}@{t.get('version')}`",
                _fields(t.get("input")),
                _fields(t.get("output")),
                f"{', '.join(t.get('candidates') or [])} ({t.get('strategy', '')})",
                "" if t.get("slo_p95_ms") is None else f"{t['slo_p95_ms']} ms",
                "" if t.get("cost_cap") is None else str(t["cost_cap"]),
            )
            for t in a.contracts
            if t.get("declared")
        ]
        if contract_rows:
            head = ("Task", "Input", "Output", "Routing plan", "SLO p95", "Cost cap")
            parts.append(
                "Task contracts (what a model is asked and what its answer must fit, "
                "validated on every call):\n\n" + _table(head, contract_rows)
            )
    parts.append(f"Key design choices, their rationale and assumptions: {TODO}")
    return "\n\n".join(parts)


def _architecture(a: AnnexInput) -> str:
    chain = " -> ".join(f"`{n}`" for n in a.gate) or "unknown"
    return (
        "aiosys runs the workflow as a durable function: every effect (a step, a model "
        "call, a human task, a child run) passes one gate, a chain of interceptors, in this "
        f"order: {chain}. Each effect is recorded in the store ({a.store or 'unknown'}) in "
        "the transaction that records its audit record and its lineage (input hashes, "
        f"model and task versions, policy decisions). Computational resources: {TODO}"
    )


def _training(a: AnnexInput) -> str:
    items = [f"`{c['id']}`: {t}" for c in a.cards for t in c.get("training_data") or []]
    if not items:
        return f"No model card states its training data. {TODO}"
    return _bullets(items)


def _oversight(a: AnnexInput) -> str:
    tasks: dict[str, dict[str, Any]] = {}
    for u in a.uses:
        for p in u["verified_by"]:
            t = tasks.setdefault(p["task"], {"roles": set(), "actions": Counter(), "people": set()})
            t["roles"].add(str(p["role"]))
            t["actions"][str(p["action"])] += 1
            t["people"].add(str(p["person"]))
    parts = []
    if tasks:
        rows = [
            (
                f"`{name}`",
                ", ".join(sorted(t["roles"])),
                _tally(t["actions"]),
                str(len(t["people"])),
            )
            for name, t in tasks.items()
        ]
        parts.append(
            "Human tasks decided in the period (a run waits, holding no worker, until a "
            "person with the role decides; each decision is an audit record):\n\n"
            + _table(("Task", "Roles", "Decisions", "Persons"), rows)
        )
        two = sum(1 for u in a.uses if len({p["person"] for p in u["verified_by"]}) >= 2)
        parts.append(
            f"Uses whose results at least two persons verified (Article 14(5)): {two} of "
            f"{len(a.uses)}."
        )
    else:
        parts.append("No person decided a human task of these uses in the period.")
    if a.policies is not None and a.policies.policies:
        found = [
            (f"`{p.id}`", p.effect, f"{Path(p.file).name}:{p.line}")
            for p in a.policies.policies.values()
        ]
        parts.append(
            f"Cedar policies in force (version `{a.policies.version}`), asked before every "
            "effect and client action:\n\n" + _table(("Policy", "Effect", "Where"), found)
        )
    else:
        parts.append("No Cedar policy set is installed.")
    parts.append(f"Measures to help deployers interpret outputs (Article 13(3)(d)): {TODO}")
    return "\n\n".join(parts)


def _validation(a: AnnexInput) -> str:
    parts = []
    for c in a.cards:
        metrics = c.get("evaluation") or {}
        if metrics:
            rows = [(str(k), str(v)) for k, v in metrics.items()]
            parts.append(f"`{c['id']}`, from its card:\n\n" + _table(("Metric", "Value"), rows))
    if not parts:
        parts.append("No model card states evaluation metrics.")
    parts.append(f"Test procedures, test data and signed test reports: {TODO}")
    return "\n\n".join(parts)


def _security(a: AnnexInput) -> str:
    cp = a.header["checkpoint"]
    return _bullets(
        [
            "The audit log is append-only and hash-chained (SHA-256); checkpoints are "
            f"signed with Ed25519 key `{cp['key']}`; `aiosys audit verify` names any edited, "
            "deleted, inserted or reordered record.",
            "Every effect is authorized by the Cedar policies in force (see 2(e)) and the "
            "built-in roles; tenants never see each other's runs, tasks or records.",
            "Personal data is replaced by pseudonyms before it reaches an external model "
            "(Presidio): by default for external cards receiving confidential data, "
            "otherwise as each card and task configures it.",
            f"Further measures: {TODO}",
        ]
    )


def _monitoring(a: AnnexInput) -> str:
    parts = []
    modes = [f"`{c['id']}`: {m}" for c in a.cards for m in c.get("failure_modes") or []]
    if modes:
        parts.append("Known limitations, from the model cards:\n\n" + _bullets(modes))
    risks = [f"`{c['id']}`: {c.get('risk_level')}" for c in a.cards]
    if risks:
        parts.append("Risk levels on the cards: " + "; ".join(risks) + ".")
    outcomes = Counter(str(u["status"]) for u in a.uses)
    if outcomes:
        parts.append(f"Outcomes of the uses in the period: {_tally(outcomes)}.")
    parts.append(
        "Logs (Article 12): the record-keeping extract beside this draft lists each use with "
        "its period, its inputs by content hash, the models and task contracts that answered "
        "and the persons who verified results; each is bound to the signed audit log "
        "(`aiosys audit verify --file ai-act-extract.jsonl`)."
    )
    parts.append(f"Accuracy for specific persons or groups, foreseeable risks: {TODO}")
    return "\n\n".join(parts)


def _tally(counts: Counter[str]) -> str:
    """``approve: 2, edit: 1``."""
    return ", ".join(f"{k}: {n}" for k, n in sorted(counts.items()))


def _fields(schema: Any) -> str:
    if not isinstance(schema, dict) or not schema:
        return ""
    return ", ".join(f"{k}: {v}" for k, v in schema.items())


def _aiosys_version() -> str:
    try:
        return version("aiosys")
    except PackageNotFoundError:  # a source tree that is not installed
        return "(source tree)"


def _bullets(items: Iterable[str]) -> str:
    return "\n".join("- " + " ".join(str(i).split()) for i in items)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Table cells hold one line, and a ``|`` would end the cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


__all__ = ["AnnexInput", "annex_iv"]
