"""One audit record, its canonical encoding and the chain's hashes.

A record says who (``principal``, a ``Principal.uid``), in which ``tenant``, did or asked
what (``action`` on ``resource``), what policy decided (``decision``, ``policies``,
``policy_version``) or how it ended (``outcome``), for which run and effect, and when (``at``,
microseconds since the epoch on the store's clock).

Encoding, fixed so that anyone can re-check a record with a few lines of code:

- ``body``: the record without ``tenant`` and ``at``, as RFC 8785 (JCS) JSON: keys sorted, no
  whitespace, UTF-8. Values are only strings, integers, booleans, null, lists and objects of
  them (no floats), for which ``json.dumps(sort_keys=True, separators=(",", ":"),
  ensure_ascii=False)`` is exactly JCS.
- ``digest`` = SHA-256 (hex) of ``"{len(tenant)}:{tenant}|{at}|{body}"`` in UTF-8: binds the
  columns the store keeps apart for queries (tenant, time) to the body.
- ``hash`` = SHA-256 (hex) of ``"{prev_hash}|{seq}|{digest}"``: the chain. ``seq`` is the
  record's position (1, 2, ...), ``prev_hash`` the hash of the record before (``GENESIS``, 64
  zeros, before the first). The store computes it in the appending statement, from the head
  it reads in that transaction (``sql/*/audit.sql``); ``chain_hash`` is the same in Python.

An extract may carry another tenant's record as a *stub* (position, hashes, digest, no
content): its hash still binds its position to the chain, and a forged stub would need a
SHA-256 preimage to meet the next signed checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _str  # json.dumps's own, in C
from typing import Any

from ..store._text import storable

GENESIS = "0" * 64

#: What ``detail`` may hold: JSON values without floats (JCS numbers are not Python's).
Scalar = str | int | bool | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What happened, as the audit log keeps it.

    ``decision``: ``allow`` or ``deny`` when a policy decided (None for an outcome no policy
    was asked about); ``outcome``: how an action or effect ended (``ok``, ``created``,
    ``existing``, ``error:<ExceptionType>``), None for a decision alone; an effect's record
    may carry both (the decision that let it proceed, folded in: ``aiosys.governance.audit``);
    ``policies``: the ids of the policies that decided; ``detail``: a few more facts (a model
    id, a workflow), strings and integers.
    """

    principal: str
    tenant: str
    action: str
    resource: str
    at: int  # microseconds since the epoch
    decision: str | None = None
    outcome: str | None = None
    policies: tuple[str, ...] = ()
    policy_version: str | None = None
    run_id: str | None = None
    effect_seq: int | None = None
    detail: Mapping[str, Scalar] = field(default_factory=dict)

    def body(self) -> str:
        """The RFC 8785 JSON of everything but ``tenant`` and ``at``: ``canonical_json`` of
        ``as_dict()``, written out directly (it is made for every effect)."""
        d = self.detail
        detail = ",".join(f"{_str(k)}:{_json(d[k])}" for k in sorted(d))
        return (
            f'{{"action":{_str(self.action)},"decision":{_json(self.decision)},'
            f'"detail":{{{detail}}},"effect_seq":{_json(self.effect_seq)},'
            f'"outcome":{_json(self.outcome)},"policies":[{",".join(map(_str, self.policies))}],'
            f'"policy_version":{_json(self.policy_version)},"principal":{_str(self.principal)},'
            f'"resource":{_str(self.resource)},"run_id":{_json(self.run_id)}}}'
        )

    def as_dict(self) -> dict[str, Any]:
        """The fields of ``body``."""
        return {
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "decision": self.decision,
            "outcome": self.outcome,
            "policies": list(self.policies),
            "policy_version": self.policy_version,
            "run_id": self.run_id,
            "effect_seq": self.effect_seq,
            "detail": {k: _scalar(v) for k, v in self.detail.items()},
        }

    def params(self) -> dict[str, Any]:
        """The parameters of the store's ``audit_append`` statement. Text a store cannot
        keep (NUL, a lone surrogate: a refused tenant name, say) is written as its JSON escape
        before it is hashed, as the store would write it (``store._text``)."""
        body, tenant = storable(self.body()), storable(self.tenant)
        return {
            "tenant": tenant,
            "at": self.at,
            "body": body,
            "digest": content_digest(tenant, self.at, body),
        }


def _json(value: Any) -> str:
    """One JSON value of a body, as ``json.dumps`` writes it (floats as their text)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return _str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    return _str(str(value))


def _scalar(value: Any) -> Scalar:
    if value is None or isinstance(value, str | bool | int):
        return value
    return str(value)  # a float or anything else: its text, so the body stays JCS


def canonical_json(value: Any) -> str:
    """RFC 8785 JSON of ``value`` (no floats: see the module docstring)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_digest(tenant: str, at: int, body: str) -> str:
    """SHA-256 (hex) binding a record's tenant, time and body."""
    return hashlib.sha256(f"{len(tenant)}:{tenant}|{at}|{body}".encode()).hexdigest()


def chain_hash(prev_hash: str, seq: int, digest: str) -> str:
    """The hash of the record at ``seq`` whose predecessor's hash is ``prev_hash``."""
    return hashlib.sha256(f"{prev_hash}|{seq}|{digest}".encode()).hexdigest()


def micros(seconds: float) -> int:
    """Seconds since the epoch (a store clock) as integer microseconds."""
    return round(seconds * 1_000_000)
