"""Verifying the audit log, or an extract of it, and naming the first bad record.

One pass in chain order (the store is read in pages of positions; an extract line by line).
Each record must sit at the next position, hold the previous record's hash, hash to its own
hash from its content, and match every signed checkpoint at its position; the log must reach
the head row and every checkpoint. What is found first, by position:

- ``missing``: a position has no record (deleted);
- ``edited``: a record's content or hash does not match (changed in place);
- ``reordered``: a record carries the hash of another position (moved, swapped, or the
  records before it renumbered after a deletion);
- ``inserted``: a record that was not written by the chain sits before this one (this one
  was written one position earlier, or chains to the record two back);
- ``unchained``: a record does not hold the previous record's hash, and nothing above
  explains it (one of the two was rewritten with a matching hash);
- ``checkpoint``: a record's hash is not the one its checkpoint signed, or a checkpoint is
  forged, missing or signed by another key;
- ``truncated``: the log ends before its head row or a checkpoint says it does;
- ``head``: the head row is missing (deleted);
- ``foreign``: an extract for one tenant holds another tenant's record.

Deleted checkpoints: each checkpoint signs the one before it, so a gap in their numbers is
found; the last ones (or all) are counted by the head row (``checkpoints``, moved in the
transaction that inserts one), so a log with fewer than the head counts is ``checkpoint``.

Without the key nobody can forge a checkpoint, so what a checkpoint covers cannot be
rewritten, even with the head row. Records after the last checkpoint are protected by the
chain and the head row only: whoever can write the database can drop that tail and move the
head back. ``Report.unsigned`` says how many records that is. Likewise whoever deletes the
last checkpoints and lowers the head's count, or wipes the log and resets its head row to
the start, leaves a state a log could legitimately be in (unsigned records; an empty log,
reported ``empty``): nothing in the database can tell, only checkpoints kept elsewhere
(an extract) can.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..store import Store
from .audit_checkpoint import Checkpoint
from .audit_keys import key_id, signature_ok
from .audit_record import GENESIS, chain_hash, content_digest

PAGE = 20_000  # records per read of the store

#: A record as the checker reads it: (seq, prev_hash, hash, digest, tenant, at, body); a stub
#: (an extract's record of another tenant) has None for tenant, at and body.
Row = tuple[int, str, str, str, Any, Any, Any]


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing wrong: ``seq`` the position of the first bad record."""

    seq: int
    kind: str
    message: str


@dataclass(slots=True)
class Report:
    """What a verification found: ``ok`` and, if not, ``problem``."""

    records: int = 0  # records (and stubs) checked
    checkpoints: int = 0
    signed_to: int = 0  # the position the last checkpoint signs
    unsigned: int = 0  # records after the last checkpoint: chained, not yet signed
    key: str = ""
    seconds: float = 0.0
    problem: Problem | None = None
    #: False when the checkpoints were checked only against the key an extract carries in its
    #: own header: whoever forged the extract could have signed it with a key of their own, so
    #: a consistent chain then proves nothing about who wrote it.
    pinned: bool = True

    @property
    def ok(self) -> bool:
        """Intact and checked against a key the verifier chose (``pinned``)."""
        return self.problem is None and self.pinned

    @property
    def status(self) -> str:
        """``intact``, ``broken`` (``problem`` says why), ``unpinned`` (consistent, but
        signed by a key only the extract itself vouches for) or ``empty`` (no records, no
        checkpoints: a new log, or one wiped with its head row reset; see the module)."""
        if self.problem is not None:
            return "broken"
        if not self.pinned:
            return "unpinned"
        return "empty" if self.records == 0 and self.checkpoints == 0 else "intact"

    def line(self) -> str:
        """One line for a person."""
        took = f"verified in {self.seconds:.2f} s"
        if self.problem is not None:
            p = self.problem
            return f"audit log NOT intact: record {p.seq} ({p.kind}): {p.message}; {took}"
        if not self.pinned:
            return (
                f"audit extract NOT verified: its {self.records} records and "
                f"{self.checkpoints} checkpoints are consistent, but only with key {self.key}, "
                "which the extract itself declares (unpinned: anyone who rewrote it could "
                "have signed it); pass --public-key with the operator's public key, or "
                f"configure the audit key; {took}"
            )
        if self.status == "empty":
            return (
                "audit log empty: no records, no checkpoints (a log wiped with its head row "
                f"reset looks the same: compare with checkpoints kept elsewhere); {took}"
            )
        signed = (
            f"signed up to record {self.signed_to} by key {self.key}, "
            f"{self.unsigned} records after it"
            if self.checkpoints
            else f"none signed yet, {self.unsigned} records chained"
        )
        return (
            f"audit log intact: {self.records} records, {self.checkpoints} checkpoints "
            f"({signed}); {took}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "pinned": self.pinned,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "signed_to": self.signed_to,
            "unsigned": self.unsigned,
            "key": self.key,
            "seconds": round(self.seconds, 3),
            "first_bad": None if self.problem is None else asdict(self.problem),
        }


def check_checkpoints(
    checkpoints: list[Checkpoint], key: Ed25519PublicKey, *, from_first: bool
) -> Problem | None:
    """Each checkpoint signed by ``key``, numbered on from the one before (from 1 when
    ``from_first``) and holding its digest, at a position not before it."""
    kid = key_id(key)
    before: Checkpoint | None = None
    for cp in checkpoints:
        where = f"checkpoint {cp.n} (of record {cp.seq})"
        if cp.key != kid:
            return Problem(cp.seq, "checkpoint", f"{where} is signed by key {cp.key}, not {kid}")
        if not signature_ok(key, cp.payload, cp.signature):
            return Problem(cp.seq, "checkpoint", f"{where}: its signature does not verify")
        expected_n = (1 if from_first else cp.n) if before is None else before.n + 1
        if cp.n != expected_n:
            return Problem(cp.seq, "checkpoint", f"checkpoint {expected_n} is missing")
        if before is None and from_first and cp.prev != GENESIS:
            return Problem(cp.seq, "checkpoint", f"{where} does not start the checkpoints")
        if before is not None and (cp.prev != before.digest or cp.seq < before.seq):
            return Problem(cp.seq, "checkpoint", f"{where} does not follow checkpoint {before.n}")
        before = cp
    return None


class ChainChecker:
    """Feed it the records in position order (``feed``), then ``finish``."""

    def __init__(
        self,
        checkpoints: Iterable[Checkpoint],
        *,
        start: int = 1,
        prev_hash: str = GENESIS,
        tenant: str | None = None,
    ) -> None:
        self.at_seq = {cp.seq: cp for cp in checkpoints}
        self.expected = start
        self.prev = prev_hash
        self.prev2: str | None = None
        self.tenant = tenant
        self.problem: Problem | None = None
        self.count = 0

    def feed(self, rows: Iterable[Row]) -> bool:
        """Check rows ``(seq, prev_hash, hash, digest, tenant, at, body)`` (``body`` None:
        a stub, whose content is not there to check); False once a problem is found."""
        if self.problem is not None:
            return False
        sha = hashlib.sha256
        at_seq, expected, prev, prev2 = self.at_seq, self.expected, self.prev, self.prev2
        tenant = self.tenant
        n = 0
        try:
            for r in rows:
                seq, prev_hash, h, digest, t, at, body = r
                ok = seq == expected and prev_hash == prev
                if ok and body is not None:
                    text = f"{len(t)}:{t}|{at}|{body}"
                    ok = sha(text.encode()).hexdigest() == digest and (
                        tenant is None or t == tenant
                    )
                ok = ok and sha(f"{prev}|{seq}|{digest}".encode()).hexdigest() == h
                if not ok or seq in at_seq:
                    self.problem = self._diagnose(r, expected, prev, prev2)
                    if self.problem is not None:
                        return False
                prev2, prev = prev, h
                expected += 1
                n += 1
        finally:
            self.expected, self.prev, self.prev2 = expected, prev, prev2
            self.count += n
        return True

    def _diagnose(self, r: Row, expected: int, prev: str, prev2: str | None) -> Problem | None:
        seq, prev_hash, h, digest, tenant, at, body = r
        if seq > expected:
            gap = f"{expected}" if seq == expected + 1 else f"{expected} to {seq - 1}"
            return Problem(expected, "missing", f"record {gap} is missing (deleted)")
        if seq < expected:
            return Problem(seq, "reordered", f"record {seq} appears again after record {seq}")
        if body is not None:
            if self.tenant is not None and tenant != self.tenant:
                return Problem(seq, "foreign", f"it belongs to tenant {tenant!r}")
            if content_digest(tenant, at, body) != digest:
                return Problem(seq, "edited", "its content does not match its digest")
        if chain_hash(prev_hash, seq, digest) != h:
            if chain_hash(prev_hash, seq + 1, digest) == h:
                return Problem(
                    seq, "reordered", f"it is record {seq + 1}, moved (swapped or renumbered)"
                )
            if chain_hash(prev_hash, seq - 1, digest) == h:
                return Problem(
                    seq - 1, "inserted", f"record {seq} was written at {seq - 1}: one was put in"
                )
            return Problem(seq, "edited", "its hash does not match its content")
        if prev_hash != prev:
            if prev2 is not None and prev_hash == prev2:
                return Problem(
                    seq - 1, "inserted", f"record {seq} chains to record {seq - 2}, not to it"
                )
            return Problem(
                seq,
                "unchained",
                f"it does not hold record {seq - 1}'s hash (one of the two was rewritten)",
            )
        cp = self.at_seq.get(seq)
        if cp is not None and cp.hash != h:
            return Problem(seq, "checkpoint", f"its hash is not the one checkpoint {cp.n} signed")
        return None

    def finish(self, *, head: tuple[int, str] | None, checkpoints: list[Checkpoint]) -> None:
        """The end of the log: it must reach the head row (the store's; None for an extract)
        and every checkpoint."""
        if self.problem is not None:
            return
        last = self.expected - 1
        beyond = [cp for cp in checkpoints if cp.seq > last]
        if beyond:
            cp = beyond[0]
            self.problem = Problem(
                last + 1,
                "truncated",
                f"the log ends at record {last} but checkpoint {cp.n} signed {cp.seq} records",
            )
        elif head is not None and head[0] > last:
            self.problem = Problem(
                last + 1,
                "truncated",
                f"the log ends at record {last} but its head is at record {head[0]}",
            )
        elif head is not None and head[0] == last and last > 0 and head[1] != self.prev:
            self.problem = Problem(last, "edited", "its hash is not the head's")


async def verify_store(store: Store, key: Ed25519PublicKey, *, page_size: int = PAGE) -> Report:
    """Verify the whole log in ``store`` against checkpoints signed by ``key``."""
    t0 = time.perf_counter()
    report = Report(key=key_id(key))
    heads = await store.fetch("audit_head_counted", {})
    if not heads:
        report.problem = Problem(0, "head", "the head row is missing (deleted)")
        report.seconds = time.perf_counter() - t0
        return report
    head = (int(heads[0]["seq"]), str(heads[0]["hash"]))
    counted = int(heads[0]["checkpoints"])
    checkpoints: list[Checkpoint] = []
    for r in await store.fetch("audit_checkpoints", {}):
        try:
            checkpoints.append(Checkpoint.parse(r["payload"], r["signature"]))
        except ValueError as exc:
            report.problem = Problem(int(r["seq"]), "checkpoint", f"checkpoint {r['n']}: {exc}")
            break
    if report.problem is None:
        report.problem = check_checkpoints(checkpoints, key, from_first=True)
    if report.problem is None:
        report.problem = _uncounted(checkpoints, counted)
    if report.problem is None:
        checker = ChainChecker(checkpoints)

        def page(after: int) -> asyncio.Task[list[tuple[Any, ...]]]:
            params = {"after": after, "upto": head[0], "limit": page_size}
            return asyncio.ensure_future(store.fetch_rows("audit_page", params))

        # The next page is read while this one is checked (PostgreSQL: the server and the
        # network work while this process hashes).
        nxt: asyncio.Task[list[tuple[Any, ...]]] | None = page(0)
        try:
            while nxt is not None:
                rows = await nxt
                nxt = None
                if not rows:
                    break
                last = int(rows[-1][0])
                if last < head[0]:
                    nxt = page(last)
                if not checker.feed(rows):
                    break
        finally:
            if nxt is not None:
                nxt.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await nxt
        checker.finish(head=head, checkpoints=checkpoints)
        report.problem = checker.problem
        report.records = checker.count
    signed_summary(report, checkpoints, head[0])
    report.seconds = time.perf_counter() - t0
    return report


def _uncounted(checkpoints: list[Checkpoint], counted: int) -> Problem | None:
    """The checkpoints after the last one found that the head counts (deleted)."""
    last = checkpoints[-1] if checkpoints else None
    have = 0 if last is None else last.n
    if counted <= have:
        return None
    gone = (
        f"checkpoint {counted}" if counted == have + 1 else f"checkpoints {have + 1} to {counted}"
    )
    return Problem(
        1 if last is None else last.seq + 1,
        "checkpoint",
        f"{gone} missing (deleted): the head counts {counted}, the log holds {have}",
    )


def signed_summary(report: Report, checkpoints: list[Checkpoint], last: int) -> None:
    report.checkpoints = len(checkpoints)
    report.signed_to = checkpoints[-1].seq if checkpoints else 0
    report.unsigned = max(0, last - report.signed_to)
