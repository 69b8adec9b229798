"""Signed checkpoints of the audit log, in the manner of CloudTrail's digest files.

A checkpoint ``n`` signs, with the operator's Ed25519 key, the chain's head at one moment:
its position ``seq`` (the number of records so far), the hash of that record, the time, and
``prev`` (SHA-256 of checkpoint ``n - 1``'s payload; 64 zeros for the first), so checkpoints
form a chain of their own. The payload is RFC 8785 JSON of ``{n, seq, hash, at, prev, key}``
(``key``: the signing key's id). A record covered by a checkpoint cannot be changed, removed,
added or moved without the chain failing to meet that signed hash; records after the last
checkpoint are protected by the chain and the head row only, until the next checkpoint.

Why not RFC 6962 Merkle roots: the log is verified whole, in one pass, and extracts carry
stubs (see ``audit_record``); inclusion proofs of single records would be what a Merkle tree
adds, and nothing here asks for them yet.

``Checkpointer`` writes one every ``every`` records or ``seconds`` seconds (whichever comes
first, only when there are new records), in each process that appends records (chaining, on
each turn, the records waiting to be: ``audit_seal``); workers that race for the same
number write it once (``ON CONFLICT DO NOTHING``) and agree because they share the key.
A process whose key is not the one that signed the last checkpoint signs nothing
(``ConfigError``; the loop and the closing checkpoint log it): its records stay chained,
for a process with the log's key to sign.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import ConfigError
from ..store import Store
from .audit_keys import key_id, sign
from .audit_record import GENESIS, canonical_json, micros

log = logging.getLogger("aiosys.audit")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed head of the chain: ``seq`` records, the last one's ``hash``, at ``at`` (µs)."""

    n: int
    seq: int
    hash: str
    at: int
    prev: str
    key: str
    payload: str
    signature: str

    @property
    def digest(self) -> str:
        """What the next checkpoint's ``prev`` holds."""
        return hashlib.sha256(self.payload.encode()).hexdigest()

    @classmethod
    def parse(cls, payload: str, signature: str) -> Checkpoint:
        """A checkpoint from its stored payload; ``ValueError`` if it is not one."""
        try:
            data = json.loads(payload)
            return cls(
                n=int(data["n"]),
                seq=int(data["seq"]),
                hash=str(data["hash"]),
                at=int(data["at"]),
                prev=str(data["prev"]),
                key=str(data["key"]),
                payload=payload,
                signature=signature,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable payload: {exc}") from None

    def row(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "seq": self.seq,
            "at": self.at,
            "payload": self.payload,
            "signature": self.signature,
        }


def make_checkpoint(
    key: Ed25519PrivateKey, n: int, seq: int, hash: str, at: int, prev: Checkpoint | None
) -> Checkpoint:
    fields = {
        "n": n,
        "seq": seq,
        "hash": hash,
        "at": at,
        "prev": GENESIS if prev is None else prev.digest,
        "key": key_id(key.public_key()),
    }
    payload = canonical_json(fields)
    return Checkpoint.parse(payload, sign(key, payload))


async def last_checkpoint(store: Store) -> Checkpoint | None:
    rows = await store.fetch("audit_last_checkpoint", {})
    return Checkpoint.parse(rows[0]["payload"], rows[0]["signature"]) if rows else None


class Checkpointer:
    """Writes checkpoints while a worker runs (``start``/``stop``), and one more at stop."""

    def __init__(
        self,
        store: Callable[[], Store],
        key: Callable[[], Ed25519PrivateKey],
        *,
        every: int,
        seconds: float,
    ) -> None:
        self._store = store
        self._key = key
        self.every = every
        self.seconds = seconds
        self._task: asyncio.Task[None] | None = None
        self._nudge = asyncio.Event()
        self._since = time.monotonic()
        self.appended = 0  # records appended by this process since the last checkpoint

    def note_appended(self, n: int = 1) -> None:
        """Count records this process appended; at ``every`` the loop looks at once."""
        self.appended += n
        if self.appended >= self.every:
            self._nudge.set()

    async def checkpoint(self, *, force: bool = False) -> Checkpoint | None:
        """Sign the head if it moved past the last checkpoint and one is due (``force``:
        whenever it moved). Returns the checkpoint written, or None."""
        store = self._store()
        # Chain the records waiting to be (PostgreSQL's starts: ``audit_seal``) first, so
        # the head signed covers them; every turn of the loop does, due or not.
        await store.fetch("audit_seal", {})
        heads = await store.fetch("audit_head", {})
        seq, head_hash = int(heads[0]["seq"]), str(heads[0]["hash"])
        last = await last_checkpoint(store)
        done = 0 if last is None else last.seq
        if seq <= done:
            return None
        due = seq - done >= self.every or time.monotonic() - self._since >= self.seconds
        if not (force or due):
            return None
        key = self._key()
        if last is not None and last.key != key_id(key.public_key()):
            # Signing with another key would make the log fail verification with its own
            # key for good (a checkpoint cannot be taken back): leave the head unsigned.
            raise ConfigError(
                f"this process's audit signing key {key_id(key.public_key())} is not the "
                f"key {last.key} that signed checkpoint {last.n}: not signing; configure the "
                "log's key (audit_key, AIOSYS_AUDIT_KEY or [audit] key in aiosys.toml)"
            )
        n = 1 if last is None else last.n + 1
        cp = make_checkpoint(key, n, seq, head_hash, micros(store.clock()), last)
        wrote = await store.execute("audit_insert_checkpoint", cp.row())
        if wrote != 1:  # another worker wrote number n first: look again next turn
            return None
        self._since = time.monotonic()
        self.appended = 0
        return cp

    def start(self) -> None:
        if self._task is None:
            self._nudge = asyncio.Event()
            self._since = time.monotonic()
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="aiosys-audit-checkpoints"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await self.checkpoint(force=True)
        except Exception as exc:  # the store is going away: say so, do not fail the close
            log.warning("audit: the closing checkpoint failed: %s", exc)

    async def _loop(self) -> None:
        poll = max(0.05, min(1.0, self.seconds))
        refused = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), poll)
            self._nudge.clear()
            if not self.appended:  # nothing of ours to sign (other workers sign theirs)
                continue
            try:
                await self.checkpoint()
            except ConfigError as exc:  # not the log's key: say so once, not every turn
                if not refused:
                    log.error("audit: %s", exc)
                refused = True
            except Exception as exc:  # a store hiccup: the next turn tries again
                log.warning("audit: writing a checkpoint failed: %s", exc)
