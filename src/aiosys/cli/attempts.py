"""Who ran a run: its attempts (one per claim), the worker of each, and the gaps between them.

Every claim of a run increments its epoch: attempt *n* is the claim with epoch *n*. Each
effect record names the claim it was last recorded under and that claim's worker
(``effects.epoch``, ``effects.worker``), and each recovery (a claim that took the run over
from a worker whose lease had expired) is kept with that worker and the lease's expiry
(``run_recoveries``): the lost claim is the one just before it. A recovery follows a *gap*:
the lost worker died, hung or lost the store while it held the run, and nothing happened to
the run from its last record until the recovery. Claims that recorded nothing and were not
lost (a claim given back at once) are not shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from rich.text import Text

from ..store.base import EffectRow, RecoveryRow
from .times import iso, local, local_ms


@dataclass
class Attempt:
    number: int  # the claim's epoch
    worker: str | None = None
    claimed_at: float | None = None  # known for recoveries
    effects: list[int] = field(default_factory=list)  # seqs last recorded under it
    last_seen_at: float | None = None  # its latest effect record (else its claim)
    gap: Gap | None = None  # the gap before it, when it recovered the run


@dataclass(frozen=True)
class Gap:
    worker: str  # the worker that lost the run
    last_seen_at: float | None  # that worker's last record on the run, if any
    lease_expired_at: float | None
    recovered_by: str
    recovered_at: float

    @property
    def seconds(self) -> float | None:
        """From the lost worker's last record to the recovery, if known."""
        if self.last_seen_at is None:
            return None
        return round(self.recovered_at - self.last_seen_at, 3)


def attempts(recoveries: list[RecoveryRow], effects: list[EffectRow]) -> list[Attempt]:
    """The run's attempts in claim order, each with its worker, and the gaps before
    recoveries."""
    found: dict[int, Attempt] = {}

    def at(epoch: int) -> Attempt:
        return found.setdefault(epoch, Attempt(epoch))

    for e in effects:
        if e.epoch is None:  # recorded before the store kept it
            continue
        a = at(e.epoch)
        a.worker = a.worker or e.worker
        a.effects.append(e.seq)
        seen = e.finished_at or e.started_at
        a.last_seen_at = seen if a.last_seen_at is None else max(a.last_seen_at, seen)
    for r in recoveries:
        a = at(r.epoch)
        a.worker, a.claimed_at = r.worker, r.claimed_at
        if a.last_seen_at is None:
            a.last_seen_at = r.claimed_at
        if r.recovered_from is not None and r.epoch > 1:
            lost = at(r.epoch - 1)
            lost.worker = lost.worker or r.recovered_from
    for r in recoveries:
        if r.recovered_from is None:
            continue
        before = found.get(r.epoch - 1)
        found[r.epoch].gap = Gap(
            worker=r.recovered_from,
            last_seen_at=None if before is None else before.last_seen_at,
            lease_expired_at=r.lease_expired_at,
            recovered_by=r.worker,
            recovered_at=r.claimed_at,
        )
    return [found[epoch] for epoch in sorted(found)]


def gap_dict(gap: Gap) -> dict[str, Any]:
    return {
        "kind": "lease_expired",
        "worker": gap.worker,
        "last_seen_at": iso(gap.last_seen_at),
        "lease_expired_at": iso(gap.lease_expired_at),
        "recovered_by": gap.recovered_by,
        "recovered_at": iso(gap.recovered_at),
        "gap_s": gap.seconds,
    }


def attempt_dicts(found: list[Attempt]) -> list[dict[str, Any]]:
    """``runs show --json``'s ``attempts``: each with its worker, its effects and the gap
    before it (None unless it recovered the run from a worker whose lease expired)."""
    return [
        {
            "attempt": a.number,
            "worker": a.worker,
            "claimed_at": iso(a.claimed_at),
            "effects": a.effects,
            "gap_before": None if a.gap is None else gap_dict(a.gap),
        }
        for a in found
    ]


def _how(a: Attempt) -> Text:
    if a.gap is not None:
        return Text(f"recovered from {a.gap.worker}", style="yellow")
    return Text("started" if a.number == 1 else "claimed")


def _effects(seqs: list[int]) -> str:
    if len(seqs) > 2 and seqs == list(range(seqs[0], seqs[-1] + 1)):
        return f"{seqs[0]}-{seqs[-1]}"
    return ", ".join(map(str, seqs))


def attempts_table(found: list[Attempt]) -> Table:
    """``runs show``: one row per attempt (which worker, how it began, its effects)."""
    table = Table(title="attempts", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("worker", no_wrap=True)
    table.add_column("claimed")
    table.add_column("how")
    table.add_column("effects")
    for a in found:
        table.add_row(
            str(a.number),
            Text(a.worker or "?"),
            local(a.claimed_at),
            _how(a),
            _effects(a.effects),
        )
    return table


def gap_text(gap: Gap) -> str:
    """One line for a gap in the timeline."""
    parts = [f"{gap.worker} held the run"]
    if gap.last_seen_at is not None:
        parts[0] += f", last recorded {local_ms(gap.last_seen_at)}"
    if gap.lease_expired_at is not None:
        parts.append(f"its lease expired {local_ms(gap.lease_expired_at)}")
    parts.append(f"{gap.recovered_by} recovered the run {local_ms(gap.recovered_at)}")
    seconds = gap.seconds
    return "; ".join(parts) + ("" if seconds is None else f" ({seconds:.1f} s after that record)")
