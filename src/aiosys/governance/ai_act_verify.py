"""Verifying an AI Act extract (``ai_act``) against the signed audit log it cites.

``verify_ai_act`` checks, in order, and names the first thing wrong:

1. the audit extract beside it is the one its header names (SHA-256), and verifies on its
   own (``audit_export.verify_extract``: the chain, every checkpoint's signature);
2. the checkpoint the header cites is signed by the key (the one given, else the one the
   audit extract declares: then the report is ``unpinned``), is the one the audit extract
   ends with, and covers every record cited;
3. every audit record a use cites (``audit``) is a record of the audit extract at that
   position with that hash, of one of the use's runs;
4. every effect's ``audit_seq`` names the record of that effect (kind, name, run, number;
   for a model call, the model card and version the record holds);
5. every person's decision (``verified_by``, Article 14(5)) names its ``complete_task``
   record, whose principal is that person: a decision with no record is not verified.

The periods and input hashes of a use are what the run's records in the store held when it
was exported: the audit records do not carry them (the values themselves are in the store,
where ``lineage_hash`` recomputes their hashes). The extract itself is not signed: a use
left out of it, header count and all, is not found here (its ``start_workflow`` record is
still in the audit extract, for whoever compares).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import AiosysError
from .audit_checkpoint import Checkpoint
from .audit_export import verify_extract
from .audit_keys import key_id, public_from_pem, signature_ok
from .audit_verify import Problem, Report

FORMAT = "aiosys-ai-act-extract"


@dataclass(slots=True)
class AiActReport:
    """What verifying an AI Act extract found: ``audit`` (its audit extract's report),
    the uses, cited records and persons' decisions checked, the cited checkpoint, and the
    first ``problem`` (its ``seq``: the audit record concerned, 0 when none is)."""

    audit: Report
    uses: int = 0
    cited: int = 0
    persons: int = 0
    checkpoint: int = 0
    signed_to: int = 0
    seconds: float = 0.0
    problem: Problem | None = None
    where: str = ""  # the use the problem was found in

    @property
    def pinned(self) -> bool:
        return self.audit.pinned

    @property
    def key(self) -> str:
        return self.audit.key

    @property
    def ok(self) -> bool:
        return self.problem is None and self.pinned

    @property
    def status(self) -> str:
        """``intact``, ``broken`` or ``unpinned`` (see ``Report.status``)."""
        if self.problem is not None:
            return "broken"
        return "intact" if self.pinned else "unpinned"

    def line(self) -> str:
        """One line for a person."""
        took = f"verified in {self.seconds:.2f} s"
        if self.problem is not None:
            p = self.problem
            where = f" ({self.where})" if self.where else ""
            return f"AI Act extract NOT verified{where}: {p.kind}: {p.message}; {took}"
        if not self.pinned:
            return (
                f"AI Act extract NOT verified: consistent, but only with key {self.key}, which "
                "its audit extract itself declares (unpinned); pass --public-key with the "
                f"operator's public key, or configure the audit key; {took}"
            )
        return (
            f"AI Act extract verified: {self.uses} uses, {self.cited} audit records cited and "
            f"{self.persons} persons' decisions attested, under checkpoint {self.checkpoint} "
            f"(records 1 to {self.signed_to}) signed by key {self.key}; {took}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "pinned": self.pinned,
            "uses": self.uses,
            "cited": self.cited,
            "persons": self.persons,
            "checkpoint": self.checkpoint,
            "signed_to": self.signed_to,
            "key": self.key,
            "seconds": round(self.seconds, 3),
            "where": self.where or None,
            "first_bad": None
            if self.problem is None
            else {
                "seq": self.problem.seq,
                "kind": self.problem.kind,
                "message": self.problem.message,
            },
            "audit": self.audit.as_dict(),
        }


def is_ai_act_extract(first_line: str) -> bool:
    """Whether a file's first line is an AI Act extract's header."""
    try:
        header = json.loads(first_line)
    except ValueError:
        return False
    return isinstance(header, dict) and header.get("type") == FORMAT


def audit_file(first_line: str) -> str:
    """The file name of the audit extract an AI Act extract's header names."""
    header = _header(first_line)
    name = str((header.get("audit_extract") or {}).get("file") or "")
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise AiosysError(f"the AI Act extract names no usable audit extract file: {name!r}")
    return name


def verify_ai_act(
    lines: Iterable[str], audit_text: str, key: Ed25519PublicKey | None
) -> AiActReport:
    """Verify an AI Act extract (its ``lines``) with the text of the audit extract beside it,
    against ``key`` (None: the key the audit extract carries; the report is then not
    ``pinned``). ``AiosysError`` if it is not an AI Act extract at all."""
    t0 = time.perf_counter()
    it = iter(lines)
    header = _header(next(it, ""))
    audit_lines = audit_text.splitlines()
    audit = verify_extract(audit_lines, key)
    report = AiActReport(audit=audit)
    uses = []
    for number, text in enumerate(it, start=2):
        if text.strip():
            item = _json(text, number)
            if item.get("type") != "use":
                raise AiosysError(f"line {number}: not a use ({item.get('type')!r})")
            uses.append(item)
    report.uses = len(uses)
    try:
        report.problem = _check(header, uses, audit_text, audit_lines, audit, key, report)
    except (KeyError, TypeError, ValueError) as exc:
        raise AiosysError(f"the AI Act extract is malformed: {exc!r}") from None
    report.seconds = time.perf_counter() - t0
    return report


def _check(
    header: dict[str, Any],
    uses: list[dict[str, Any]],
    audit_text: str,
    audit_lines: list[str],
    audit: Report,
    key: Ed25519PublicKey | None,
    report: AiActReport,
) -> Problem | None:
    named = header["audit_extract"]["sha256"]
    if hashlib.sha256(audit_text.encode()).hexdigest() != named:
        return Problem(0, "extract", "the audit extract beside it is not the one it names")
    if audit.problem is not None:
        p = audit.problem
        return Problem(p.seq, p.kind, f"its audit extract: record {p.seq}: {p.message}")
    if int(header["uses"]) != len(uses):
        return Problem(
            0, "extract", f"its header counts {header['uses']} uses, it holds {len(uses)}"
        )
    audit_header = json.loads(audit_lines[0])
    if key is None:
        key = public_from_pem(str(audit_header["public_key"]))
    cited = header["checkpoint"]
    cp = Checkpoint.parse(cited["payload"], cited["signature"])
    report.checkpoint, report.signed_to = cp.n, cp.seq
    if cp.key != key_id(key) or not signature_ok(key, cp.payload, cp.signature):
        return Problem(
            cp.seq, "checkpoint", f"checkpoint {cp.n} is not signed by key {key_id(key)}"
        )
    if (cp.n, cp.seq, cp.hash) != (cited["n"], cited["seq"], cited["hash"]):
        return Problem(cp.seq, "checkpoint", "the checkpoint's fields differ from its payload")
    records: dict[int, dict[str, Any]] = {}
    checkpoints: list[Checkpoint] = []
    for text in audit_lines[1:]:
        item = json.loads(text)
        if item["type"] == "record":
            records[int(item["seq"])] = item
        elif item["type"] == "checkpoint":
            checkpoints.append(Checkpoint.parse(item["payload"], item["signature"]))
    if int(audit_header["first"]) > 0:
        covering = [c for c in checkpoints if c.seq >= int(audit_header["last"])]
        if not covering or covering[0].payload != cp.payload:
            return Problem(
                cp.seq,
                "checkpoint",
                f"checkpoint {cp.n} is not the one its audit extract ends with",
            )
    for use in uses:
        report.where = f"use of run {use['run_id']}"
        found = _check_use(use, records, cp, report)
        if found is not None:
            return found
    report.where = ""
    return None


def _check_use(
    use: dict[str, Any], records: dict[int, dict[str, Any]], cp: Checkpoint, report: AiActReport
) -> Problem | None:
    runs = {use["run_id"]} | {e["run_id"] for e in use["effects"]}
    for c in use["audit"]:
        seq = int(c["seq"])
        body = _body(records, seq)
        if body is None or records[seq]["hash"] != c["hash"]:
            return Problem(
                seq, "citation", f"record {seq} is not in the audit extract with that hash"
            )
        if seq > cp.seq:
            return Problem(seq, "citation", f"record {seq} is after checkpoint {cp.n}")
        if body.get("run_id") != c["run_id"] or c["run_id"] not in runs:
            return Problem(seq, "citation", f"record {seq} is not a record of this use's runs")
        if body.get("action") != c["action"] or body.get("effect_seq") != c["effect"]:
            return Problem(seq, "citation", f"record {seq} is not the {c['action']} it is cited as")
        report.cited += 1
    cited = {int(c["seq"]) for c in use["audit"]}
    for e in use["effects"]:
        if e["audit_seq"] is None:
            continue
        seq = int(e["audit_seq"])
        body = _body(records, seq) if seq in cited else None
        what = f"effect {e['seq']} ({e['kind']} {e['name']}) of run {e['run_id']}"
        if body is None:
            return Problem(seq, "citation", f"{what}: record {seq} is not among those cited")
        effect = (
            body.get("action"),
            body.get("resource"),
            body.get("run_id"),
            body.get("effect_seq"),
        )
        if effect != (e["kind"], e["name"], e["run_id"], e["seq"]):
            return Problem(seq, "citation", f"{what}: record {seq} is another effect's")
        detail = body.get("detail") or {}
        if e.get("model") and "model" in detail:
            if f"{detail['model']}@{detail.get('version')}" != e["model"]:
                return Problem(seq, "citation", f"{what}: its record names another model")
    for p in use["verified_by"]:
        what = f"{p['person']}'s decision of task {p['task']} (run {p['run_id']})"
        if p["audit_seq"] is None:
            return Problem(0, "unattested", f"{what} has no audit record")
        seq = int(p["audit_seq"])
        body = _body(records, seq) if seq in cited else None
        if body is None:
            return Problem(seq, "citation", f"{what}: record {seq} is not among those cited")
        decision = (
            body.get("action"),
            body.get("outcome"),
            body.get("principal"),
            body.get("run_id"),
            body.get("effect_seq"),
        )
        if decision != ("complete_task", "ok", p["person"], p["run_id"], p["effect"]):
            return Problem(seq, "citation", f"{what}: record {seq} is not that decision")
        report.persons += 1
    return None


def _body(records: dict[int, dict[str, Any]], seq: int) -> dict[str, Any] | None:
    item = records.get(seq)
    if item is None:
        return None
    body = json.loads(item["body"])
    return body if isinstance(body, dict) else None


def _header(text: str) -> dict[str, Any]:
    try:
        header = json.loads(text)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("type") != FORMAT:
        raise AiosysError(f"not an AI Act extract: its first line is not a {FORMAT} header")
    return header


def _json(text: str, number: int) -> dict[str, Any]:
    try:
        item = json.loads(text)
    except ValueError as exc:
        raise AiosysError(f"line {number} of the AI Act extract is not JSON: {exc}") from None
    if not isinstance(item, dict):
        raise AiosysError(f"line {number} of the AI Act extract is not a JSON object")
    return item


__all__ = ["AiActReport", "audit_file", "is_ai_act_extract", "verify_ai_act"]
