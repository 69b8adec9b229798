"""Pruning: deleting runs that ended long ago, with every row that belongs to them.

``Store.prune`` (``CommonStore.prune`` here drives it) goes through the runs that ended before
a cutoff in trees: a *root* is an ended run whose parent is gone or never was; its tree is
the root and its descendants reached through ended runs (in the same tenant). A batch takes
up to ``batch`` roots, oldest first, after a cursor on ``(finished_at, id)``, and deletes
their trees in one transaction: the runs, their effects, signals, model usage rows, shadow
outcomes, the cache entries they wrote (``model_cache.run_id``), their human tasks and
what their pseudonyms stood for (``pseudonyms``, redaction). A live descendant stays,
and so does everything below it: once it ends it is a root of its own (its parent is gone).

Safe beside workers: only ended runs are deleted, and the run rows are deleted with their
status checked again in the deleting transaction (SQLite: one write transaction for the
batch; PostgreSQL: the batch's runs are locked in id order, as group commits lock them, and
read again), so a run resumed meanwhile stays, with its rows. Two prunes at once on
PostgreSQL queue on those locks: the second finds the rows gone and deletes nothing twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from .base import TERMINAL

# The tables whose rows belong to a run, by their names in a PruneReport and their queries
# (``prune_<name>`` deletes, ``prune_counts`` counts them).
ROW_TABLES = ("effects", "signals", "usage", "shadows", "cache", "tasks", "pseudonyms")
START = (-1.0, "")  # a cursor before every run: finished_at is never negative


class Step(NamedTuple):
    """One batch: how many roots it went through, the cursor after them, rows per table."""

    roots: int
    cursor: tuple[float, str]
    counts: dict[str, int]


def tree_params(
    before: float, tenant: str | None, cursor: tuple[float, str], limit: int
) -> dict[str, Any]:
    """Parameters of ``prune_tree``."""
    return {
        "before": before,
        "tenant": tenant,
        "after_t": cursor[0],
        "after_id": cursor[1],
        "limit": limit,
    }


def cursor_after(
    tree: Sequence[Mapping[str, Any]], cursor: tuple[float, str]
) -> tuple[int, tuple[float, str]]:
    """How many roots ``prune_tree`` returned, and the cursor after the last of them."""
    roots = [r for r in tree if r["root_n"] is not None]
    if not roots:
        return 0, cursor
    last = max(roots, key=lambda r: int(r["root_n"]))
    return len(roots), (float(last["finished_at"]), str(last["id"]))


def prunable(
    tree: Sequence[Mapping[str, Any]], now: Sequence[Mapping[str, Any]], before: float
) -> list[str]:
    """The runs of a batch to delete: ``tree`` as ``prune_tree`` chose it, ``now`` the same
    runs as they are in the deleting transaction (a run may have been resumed, or deleted by
    another prune, since). A root goes if it is still ended before ``before`` (a parent that
    was gone stays gone); a descendant if it is still ended and its parent goes. Ids in
    sorted order."""
    current = {str(r["id"]): r for r in now}
    children: dict[str, list[str]] = defaultdict(list)
    for run_id, row in current.items():
        if row["parent_id"] is not None:
            children[str(row["parent_id"])].append(run_id)

    def still_a_root(run_id: str) -> bool:
        row = current.get(run_id)
        return (
            row is not None
            and row["status"] in TERMINAL
            and row["finished_at"] is not None
            and float(row["finished_at"]) < before
        )

    todo = [str(r["id"]) for r in tree if r["root_n"] is not None and still_a_root(str(r["id"]))]
    keep: set[str] = set()
    while todo:
        run_id = todo.pop()
        if run_id in keep:
            continue
        keep.add(run_id)
        todo.extend(c for c in children[run_id] if current[c]["status"] in TERMINAL)
    return sorted(keep)


def sqlite_batch(
    c: sqlite3.Connection,
    q: Mapping[str, str],
    before: float,
    tenant: str | None,
    cursor: tuple[float, str],
    limit: int,
    dry_run: bool,
) -> Step:
    """One batch on SQLite, inside the caller's transaction (a write transaction, which
    holds the file against every other writer, unless ``dry_run``)."""
    tree = [dict(r) for r in c.execute(q["prune_tree"], tree_params(before, tenant, cursor, limit))]
    roots, after = cursor_after(tree, cursor)
    ids = prunable(tree, tree, before)
    if not ids:
        return Step(roots, after, {})
    param = {"ids": json.dumps(ids)}
    if dry_run:
        counted = c.execute(q["prune_counts"], param).fetchone()
        return Step(roots, after, {"runs": len(ids), **{t: int(counted[t]) for t in ROW_TABLES}})
    counts = {name: c.execute(q[f"prune_{name}"], param).rowcount for name in ("runs", *ROW_TABLES)}
    return Step(roots, after, counts)
