"""Group commit on PostgreSQL: the writes of one batch, sent in one pipelined transaction.

A batch is usually one round trip: its statements go out together and COMMIT follows them.
It syncs early only where a statement depends on an earlier one's outcome.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ._pgconn import Cursor, Tx
from ._text import bind
from .base import Finish, RecordEffect, Release, Write, WriteResult
from .common import CommonStore, write_run_id, write_statement

#: Side writes whose text is made storable where their parameters are built (an audit
#: record's, before it is hashed: ``AuditRecord.params``), so ``bind`` would change nothing.
BOUND = frozenset({"audit_append"})


def many_params(rows: Sequence[Mapping[str, Any]], *, bound: bool = False) -> dict[str, Any]:
    """The parameters of a ``<query>_many`` statement, which writes all the rows of
    ``<query>`` at once, in order: ``rows``, a JSON array of their parameter objects (text
    made storable first, as ``bind`` would, unless ``bound``: it is already)."""
    objects = rows if bound else [bind(dict(r)) for r in rows]
    return {"rows": json.dumps(objects, ensure_ascii=False)}


def stands_alone(w: Write) -> bool:
    """Whether a write, alone in its batch, is one statement: nothing depends on whether it
    landed and nobody needs to be told."""
    if isinstance(w, RecordEffect) and w.side_writes:
        return False
    return not isinstance(w, Release) and not _waits_for_outcome(w)


def _cascades(w: Write) -> bool:
    """A ``Finish`` that cancels the run's children if it lands."""
    return isinstance(w, Finish) and bool(w.cancel_children)


def locked_ids(writes: Sequence[Write]) -> list[str]:
    """The runs a batch writes, parents it may wake included, in the order to lock them."""
    parents = {w.parent_id for w in writes if isinstance(w, Finish) and w.parent_id}
    return sorted({write_run_id(w) for w in writes} | parents)


def _waits_for_outcome(w: Write) -> bool:
    """Whether a write, if it lands, needs another statement: consume its signal, wake its
    parent."""
    if isinstance(w, RecordEffect):
        return w.consume_signal is not None
    return isinstance(w, Finish) and (bool(w.parent_id) or _cascades(w))


def send_order(writes: Sequence[Write]) -> list[int]:
    """The order to send a batch's writes in. Writes are placed in layers where each run (or
    parent to wake) is touched at most once, so the writes of a layer commute and can be
    grouped by statement; a run's own writes stay in order."""
    next_layer: dict[str, int] = {}
    layers: list[list[int]] = []
    for i, w in enumerate(writes):
        touched = [write_run_id(w)]
        if isinstance(w, Finish) and w.parent_id:
            touched.append(w.parent_id)
        layer = max(next_layer.get(run_id, 0) for run_id in touched)
        next_layer.update(dict.fromkeys(touched, layer + 1))
        if layer == len(layers):
            layers.append([])
        layers[layer].append(i)
    return [i for layer in layers for i in sorted(layer, key=lambda i: type(writes[i]).__name__)]


class Batch:
    """The writes of one group commit, as ``add``ed. Consecutive writes of one kind go out
    as one ``executemany`` (half the client CPU of one execute each, for one more wait).
    What depends on whether a write landed (a ``RecordEffect`` consumes its signal, a
    child's ``Finish`` wakes its parent) waits for a sync: one at the end, or earlier if a
    later write touches a parent about to be woken (its ``Park`` must see the wake, as it
    would in SQLite)."""

    def __init__(self, tx: Tx, q: dict[str, str], t: float) -> None:
        self.tx, self.q, self.t = tx, q, t
        self.query = ""  # the statement of the writes being grouped
        self.group: list[dict[str, Any]] = []
        self.writes: list[Write] = []  # all writes so far
        self.cursors: list[Cursor] = []  # one per group sent
        self.read = 0  # cursors whose row counts are read
        self.counts: list[int] = []  # rows changed by each write, as far as read
        self.checked = 0  # writes whose follow-ups are queued
        self.waking: set[str] = set()
        self.notify = False  # something became claimable now
        self.side: dict[str, list[dict[str, Any]]] = {}  # records' side writes, by query

    async def add(self, w: Write) -> None:
        if write_run_id(w) in self.waking:
            await self.follow_up()
        query, params = write_statement(self.q, w, self.t)
        if query != self.query:
            await self._send()
            self.query = query
        self.group.append(params)
        self.writes.append(w)
        if isinstance(w, Finish) and w.parent_id:
            self.waking.add(w.parent_id)
        if isinstance(w, RecordEffect):
            for side_query, side_params in w.side_writes:
                self.side.setdefault(side_query, []).append(dict(side_params))
        self.notify = self.notify or isinstance(w, Release)

    async def end(self) -> None:
        await self.follow_up()
        # Side writes land whatever their records did, so they need no outcome: they go
        # last, outside the row counts of the writes: one statement for all the rows of a
        # query that has a ``<query>_many`` form (``many_params``: the audit log's, whose
        # records are chained in order under one lock), else one executemany per statement.
        for query, rows in self.side.items():
            many = self.q.get(f"{query}_many")
            if many is not None and len(rows) > 1:
                await self.tx.run(many, many_params(rows, bound=query in BOUND))
            else:
                await self.tx.conn.cursor().executemany(self.q[query], rows)
        if self.notify:
            await self.tx.run(self.q["notify_work"], {"queue": ""})

    def results(self, order: list[int]) -> list[WriteResult]:
        """Once the transaction committed: which writes landed, in the batch's order (the
        writes were sent in ``order``)."""
        self._read()
        results = [WriteResult(False)] * len(order)
        for i, n in zip(order, self.counts, strict=True):
            results[i] = WriteResult(n == 1)
        return results

    async def _send(self) -> None:
        if len(self.group) == 1:
            self.cursors.append(await self.tx.run(self.query, self.group[0]))
        elif self.group:
            cur = self.tx.conn.cursor()
            await cur.executemany(self.query, self.group, returning=True)
            self.cursors.append(cur)
        self.group = []

    def _read(self) -> None:
        """Read the row counts of the groups sent since the last read (after a sync)."""
        for cur in self.cursors[self.read :]:
            self.counts.append(cur.rowcount)
            while cur.nextset():
                self.counts.append(cur.rowcount)
        self.read = len(self.cursors)

    async def follow_up(self) -> None:
        """Send the writes so far and queue the follow-ups of those that landed."""
        await self._send()
        todo = self.writes[self.checked :]
        if any(_waits_for_outcome(w) for w in todo):
            await self.tx.sync()
            self._read()
            for w, n in zip(todo, self.counts[self.checked :], strict=True):
                if n != 1:
                    continue
                if isinstance(w, RecordEffect) and w.consume_signal is not None:
                    params = {"id": w.consume_signal, "seq": w.effect.seq}
                    await self.tx.run(self.q["consume_signal"], params)
                elif isinstance(w, Finish) and w.parent_id:
                    await self.tx.run(self.q["wake"], {"run_id": w.parent_id, "now": self.t})
                    self.notify = True
                if isinstance(w, Finish) and w.cancel_children:
                    reason = w.cancel_children
                    error = CommonStore.cancel_error(reason)
                    cascade = {"id": w.run_id, "reason": reason, "now": self.t, "error": error}
                    await self.tx.run(self.q["cancel_children"], cascade)
        self.checked = len(self.writes)
        self.waking.clear()
