"""The audit record's encoding: the body written out directly is exactly RFC 8785 JSON."""

from __future__ import annotations

import hashlib
import json

import pytest

from aiosys.governance.audit_record import (
    GENESIS,
    AuditRecord,
    canonical_json,
    chain_hash,
    content_digest,
)

AWKWARD = ["plain", 'quote " and \\ backslash', "new\nline\ttab\x01ctl", "émoji 🎉 \u2028", ""]


@pytest.mark.parametrize("text", AWKWARD)
def test_the_body_is_the_canonical_json_of_the_record(text: str) -> None:
    record = AuditRecord(
        principal=f"user:t/{text}",
        tenant="t",
        action=text,
        resource=text,
        at=1,
        decision=None if text else "deny",
        outcome=text or None,
        policies=(text, "p2"),
        policy_version=text,
        run_id=text,
        effect_seq=7,
        detail={"z": text, "a": 1, "flag": True, "none": None, "f": 0.5},  # type: ignore[dict-item]
    )
    body = record.body()
    assert body == canonical_json(record.as_dict())
    assert json.loads(body)["detail"]["f"] == "0.5"  # no floats in a body


def test_the_hashes_are_sha256_of_the_documented_text() -> None:
    digest = content_digest("acme", 12, '{"a":1}')
    assert digest == hashlib.sha256(b'4:acme|12|{"a":1}').hexdigest()
    assert (
        chain_hash(GENESIS, 1, digest)
        == hashlib.sha256(f"{'0' * 64}|1|{digest}".encode()).hexdigest()
    )
