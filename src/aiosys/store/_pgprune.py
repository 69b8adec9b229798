"""One prune batch on PostgreSQL (see ``prune.py``); apart from ``prune.py`` so that a SQLite
store never imports psycopg."""

from __future__ import annotations

from collections.abc import Mapping

from ._pgconn import Slot, transaction
from .prune import ROW_TABLES, Step, cursor_after, prunable, tree_params

SNAPSHOT = b"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"


async def postgres_batch(
    slot: Slot,
    q: Mapping[str, str],
    before: float,
    tenant: str | None,
    cursor: tuple[float, str],
    limit: int,
    dry_run: bool,
) -> Step:
    """Choose a batch, lock its runs in id order and read them again (a run resumed, or
    deleted by another prune, since is seen), then delete what still may go, all in one
    transaction. A dry run reads one snapshot and counts."""
    async with transaction(slot, SNAPSHOT if dry_run else b"BEGIN") as tx:
        chosen = await tx.run(q["prune_tree"], tree_params(before, tenant, cursor, limit))
        await tx.sync()
        tree = await chosen.fetchall()
        roots, after = cursor_after(tree, cursor)
        if not tree:
            return Step(roots, after, {})
        now = tree
        if not dry_run:
            locked = await tx.run(q["prune_lock"], {"ids": [r["id"] for r in tree]})
            await tx.sync()
            now = await locked.fetchall()
        ids = prunable(tree, now, before)
        if not ids:
            return Step(roots, after, {})
        if dry_run:
            counted = await tx.run(q["prune_counts"], {"ids": ids})
        else:
            deleted = {
                n: await tx.run(q[f"prune_{n}"], {"ids": ids}) for n in ("runs", *ROW_TABLES)
            }
    if dry_run:
        row = await counted.fetchone()
        assert row is not None  # a row of counts, always
        return Step(roots, after, {"runs": len(ids), **{t: int(row[t]) for t in ROW_TABLES}})
    return Step(roots, after, {n: cur.rowcount for n, cur in deleted.items()})
