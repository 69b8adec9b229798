"""Extracts of the audit log as JSON Lines, verifiable on their own.

An extract is, one JSON object per line:

1. a header: ``{"type": "aiosys-audit-extract", "version": 1, "tenant", "since", "until",
   "first", "last", "start", "end", "key", "public_key"}``;
2. the checkpoints it needs (``{"type": "checkpoint", "payload", "signature"}``): the last
   one before the range (its hash anchors the first line) and every one up to the first at
   or after the range's end (which anchors the last line);
3. every position from ``start`` to ``end`` in order: ``{"type": "record", "seq",
   "prev_hash", "hash", "digest", "tenant", "at", "body"}`` for the records asked for, and
   ``{"type": "stub", "seq", "prev_hash", "hash", "digest"}`` (no content) for the others:
   another tenant's, or those outside the time range that lie between anchors.

A tenant's extract thus shows how many records others wrote in the range, never what they
hold. ``verify_extract`` checks it against the operator's public key; given none, it checks
it against the key the header carries, which proves only that the extract is consistent
(whoever edits a record can rebuild the chain and re-sign it with a key of their own), so the
report is then not ``ok``: its ``status`` is ``unpinned``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import AiosysError, ConfigError
from ..store import Store
from .audit_checkpoint import Checkpoint
from .audit_keys import key_id, public_from_pem, public_pem
from .audit_record import GENESIS
from .audit_verify import (
    PAGE,
    ChainChecker,
    Problem,
    Report,
    Row,
    check_checkpoints,
    signed_summary,
)

FORMAT = "aiosys-audit-extract"


async def export(
    store: Store,
    key: Ed25519PublicKey,
    out: IO[str],
    *,
    since: int | None = None,
    until: int | None = None,
    tenant: str | None = None,
    upto: int | None = None,
) -> dict[str, int]:
    """Write an extract of the records from ``since`` to before ``until`` (microseconds;
    None: unbounded) of ``tenant`` (None: every tenant) to ``out``, those at positions up to
    ``upto`` only (None: up to the head; the AI Act evidence stops at the checkpoint it
    cites). Returns the counts of records, stubs and checkpoints written."""
    counts: dict[str, int] = {}
    async for text in extract(
        store, key, since=since, until=until, tenant=tenant, upto=upto, counts=counts
    ):
        out.write(text)
    return counts


async def extract(
    store: Store,
    key: Ed25519PublicKey,
    *,
    since: int | None = None,
    until: int | None = None,
    tenant: str | None = None,
    upto: int | None = None,
    counts: dict[str, int] | None = None,
) -> AsyncIterator[str]:
    """``export``'s extract as it is read: the header and the checkpoints first (what can
    refuse the extract is found before it: ``AiosysError``, ``ConfigError``), then the
    lines of one page of the log (``PAGE`` positions) at a time, so an extract of any size
    is sent without being held whole. ``counts``, when given, gets the counts of records,
    stubs and checkpoints as they are written."""
    heads = await store.fetch("audit_head", {})
    if not heads:
        raise AiosysError("the audit log's head row is missing (deleted): see audit verify")
    head = int(heads[0]["seq"])
    if upto is not None:
        head = min(head, upto)
    checkpoints = [
        Checkpoint.parse(r["payload"], r["signature"])
        for r in await store.fetch("audit_checkpoints", {})
    ]
    lo, hi = since if since is not None else -(2**62), until if until is not None else 2**62
    if since is None and until is None:
        first, last = (1, head) if head else (0, -1)
    else:
        span = (await store.fetch("audit_span", {"since": lo, "until": hi}))[0]
        first, last = (0, -1) if span["first"] is None else (int(span["first"]), int(span["last"]))
        if last > head:  # records past ``upto``
            last = head
            if first > last:
                first, last = 0, -1
    before = [cp for cp in checkpoints if cp.seq < first]
    after = [cp for cp in checkpoints if cp.seq >= last]
    start = before[-1].seq + 1 if before else 1
    end = after[0].seq if after else last
    if first == 0:  # nothing in the range
        start, end = 1, 0
    needed = [cp for cp in checkpoints if start - 1 <= cp.seq <= max(end, start - 1)]
    signer = key_id(key)
    for cp in needed:  # an extract whose checkpoints its key does not verify is no proof
        if cp.key != signer:
            raise ConfigError(
                f"checkpoint {cp.n} (of record {cp.seq}) is signed by key {cp.key}, not by "
                f"{signer}: the extract would not verify; export with the key that signs "
                "the log (or its public half)"
            )
    header = {
        "type": FORMAT,
        "version": 1,
        "tenant": tenant,
        "since": since,
        "until": until,
        "first": first,
        "last": last,
        "start": start,
        "end": end,
        "key": key_id(key),
        "public_key": public_pem(key),
        "exported_at": round(time.time() * 1_000_000),
    }
    if counts is None:
        counts = {}
    counts.update(records=0, stubs=0, checkpoints=len(needed))
    lines = [json.dumps(header)]
    for cp in needed:
        lines.append(
            json.dumps({"type": "checkpoint", "payload": cp.payload, "signature": cp.signature})
        )
    yield "\n".join(lines) + "\n"
    after_seq = start - 1
    while after_seq < end:
        params = {"after": after_seq, "upto": end, "limit": PAGE}
        rows = await store.fetch("audit_page", params)
        if not rows:
            break
        page: list[str] = []
        for r in rows:
            seq = int(r["seq"])
            full = (
                first <= seq <= last
                and (tenant is None or r["tenant"] == tenant)
                and lo <= int(r["at"]) < hi
            )
            line: dict[str, Any] = {
                "type": "record" if full else "stub",
                "seq": seq,
                "prev_hash": r["prev_hash"],
                "hash": r["hash"],
                "digest": r["digest"],
            }
            if full:
                line.update(tenant=r["tenant"], at=int(r["at"]), body=r["body"])
            counts["records" if full else "stubs"] += 1
            page.append(json.dumps(line, ensure_ascii=False))
        yield "\n".join(page) + "\n"
        after_seq = int(rows[-1]["seq"])


def verify_extract(lines: Iterable[str], key: Ed25519PublicKey | None) -> Report:
    """Verify an extract (its lines) against ``key``, else against the key in its header
    (then the report is not ``pinned``, hence not ``ok`` even if consistent).
    ``AiosysError`` if it is not an extract at all."""
    t0 = time.perf_counter()
    it = iter(lines)
    header = _header(next(it, ""))
    pinned = key is not None
    if key is None:
        key = public_from_pem(str(header.get("public_key", "")))
    tenant = header.get("tenant")
    checkpoints: list[Checkpoint] = []
    entries: list[dict[str, Any]] = []
    for number, text in enumerate(it, start=2):
        if not text.strip():
            continue
        item = _line(text, number)
        if item.get("type") == "checkpoint":
            try:
                checkpoints.append(Checkpoint.parse(item["payload"], item["signature"]))
            except (ValueError, KeyError) as exc:
                raise AiosysError(f"line {number}: not a checkpoint ({exc})") from None
        elif item.get("type") in ("record", "stub"):
            entries.append(item)
        else:
            raise AiosysError(f"line {number}: unknown line type {item.get('type')!r}")
    report = Report(key=key_id(key), pinned=pinned)
    report.problem = check_checkpoints(checkpoints, key, from_first=False)
    if report.problem is None and entries:
        report.problem = _check_entries(entries, checkpoints, tenant, report)
    signed_summary(report, checkpoints, int(entries[-1]["seq"]) if entries else 0)
    report.seconds = time.perf_counter() - t0
    return report


def _check_entries(
    entries: list[dict[str, Any]], checkpoints: list[Checkpoint], tenant: Any, report: Report
) -> Problem | None:
    start = int(entries[0]["seq"])
    anchor = next((cp for cp in checkpoints if cp.seq == start - 1), None)
    if start > 1 and anchor is None:
        return Problem(start, "checkpoint", "no checkpoint in the extract anchors its first line")
    try:
        checker = ChainChecker(
            checkpoints,
            start=start,
            prev_hash=GENESIS if anchor is None else anchor.hash,
            tenant=tenant if isinstance(tenant, str) else None,
        )
        checker.feed(_checked(entries))
    except (KeyError, TypeError, ValueError) as exc:
        raise AiosysError(f"a record line of the extract is malformed: {exc}") from None
    checker.finish(head=None, checkpoints=checkpoints)
    report.records = checker.count
    return checker.problem


def _checked(entries: list[dict[str, Any]]) -> Iterator[Row]:
    for e in entries:
        seq, prev_hash, h, digest = int(e["seq"]), e["prev_hash"], e["hash"], e["digest"]
        if e["type"] == "stub":  # a stub is never taken for content
            yield seq, prev_hash, h, digest, None, None, None
        else:
            yield seq, prev_hash, h, digest, str(e["tenant"]), int(e["at"]), str(e["body"])


def _header(text: str) -> dict[str, Any]:
    try:
        header = json.loads(text)
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("type") != FORMAT:
        raise AiosysError(f"not an aiosys audit extract: its first line is not a {FORMAT} header")
    return header


def _line(text: str, number: int) -> dict[str, Any]:
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AiosysError(f"line {number} of the extract is not JSON: {exc}") from None
    if not isinstance(item, dict):
        raise AiosysError(f"line {number} of the extract is not a JSON object")
    return item
