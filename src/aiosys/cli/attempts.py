"""Who ran a run: its attempts (one per claim), the worker of each, and the gaps between them.

An attempt begins with a claim (``run_claims``; a run started in a worker's process is
leased to it at creation: its attempt 1). An attempt that began by taking the run over from
a worker whose lease had expired follows a *gap*: that worker died, hung or lost the store
while running it, and nothing happened to the run from its last sign of life (its last
effect record, else its claim) until the recovery. Each effect names the attempt it was last
recorded under (``effects.epoch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

from ..store.base import ClaimRow, EffectRow
from .times import iso, local, local_ms


@dataclass(frozen=True)
class Attempt:
    number: int  # 1, 2, ... in claim order
    claim: ClaimRow
    effects: list[int]  # seqs of the effects last recorded under this claim
    last_seen_at: float  # its claim, or its latest effect record
    gap: Gap | None  # the gap before it, when it recovered the run


@dataclass(frozen=True)
class Gap:
    worker: str  # the worker that lost the run
    last_seen_at: float | None  # that worker's last sign of life on the run, if known
    lease_expired_at: float | None
    recovered_by: str
    recovered_at: float

    @property
    def seconds(self) -> float | None:
        """From the lost worker's last sign of life to the recovery, if known."""
        if self.last_seen_at is None:
            return None
        return round(self.recovered_at - self.last_seen_at, 3)


def attempts(claims: list[ClaimRow], effects: list[EffectRow]) -> list[Attempt]:
    """The run's attempts, oldest first, with the gaps before recoveries."""
    out: list[Attempt] = []
    previous: Attempt | None = None
    for n, claim in enumerate(claims, start=1):
        mine = [e for e in effects if e.epoch == claim.epoch]
        seen = [claim.claimed_at, *(e.finished_at or e.started_at for e in mine)]
        gap = None
        if claim.recovered_from is not None:
            known = previous is not None and previous.claim.worker == claim.recovered_from
            gap = Gap(
                worker=claim.recovered_from,
                last_seen_at=previous.last_seen_at if known and previous else None,
                lease_expired_at=claim.lease_expired_at,
                recovered_by=claim.worker,
                recovered_at=claim.claimed_at,
            )
        attempt = Attempt(n, claim, [e.seq for e in mine], max(seen), gap)
        out.append(attempt)
        previous = attempt
    return out


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
    """``runs show --json``'s ``attempts``: each with its worker, its claim and the gap
    before it (None unless it recovered the run from a worker whose lease expired)."""
    return [
        {
            "attempt": a.number,
            "epoch": a.claim.epoch,
            "worker": a.claim.worker,
            "claimed_at": iso(a.claim.claimed_at),
            "effects": a.effects,
            "gap_before": None if a.gap is None else gap_dict(a.gap),
        }
        for a in found
    ]


def by_epoch(found: list[Attempt]) -> dict[int, Attempt]:
    return {a.claim.epoch: a for a in found}


def _how(a: Attempt) -> Text:
    if a.gap is None:
        return Text("started" if a.number == 1 else "claimed")
    return Text(f"recovered from {a.gap.worker}", style="yellow")


def _effects(seqs: list[int]) -> str:
    if not seqs:
        return ""
    if seqs == list(range(seqs[0], seqs[-1] + 1)) and len(seqs) > 2:
        return f"{seqs[0]}-{seqs[-1]}"
    return ", ".join(map(str, seqs))


def attempts_table(found: list[Attempt]) -> Table:
    """``runs show``: one row per attempt (which worker, when, how it began, its effects)."""
    table = Table(title="attempts", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("worker", no_wrap=True)
    table.add_column("claimed")
    table.add_column("how")
    table.add_column("effects")
    for a in found:
        table.add_row(
            str(a.number),
            Text(a.claim.worker),
            local(a.claim.claimed_at),
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
