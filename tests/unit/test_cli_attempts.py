"""``runs show``'s attempts, derived from effect records and recoveries: the worker of each
attempt, and a gap before each recovery, also when the lost attempt recorded nothing."""

from __future__ import annotations

from aiosys.cli.attempts import attempts
from aiosys.store.base import EffectRow, RecoveryRow


def effect(seq: int, epoch: int, worker: str, t: float) -> EffectRow:
    return EffectRow(
        "r", seq, "step", f"s{seq}", "ok", "1", None, 1, t, t + 0.1, None, epoch, worker
    )


def recovery(epoch: int, worker: str, lost: str, expired: float, at: float) -> RecoveryRow:
    return RecoveryRow("r", epoch, worker, at, lost, expired)


def test_a_lost_attempt_that_recorded_nothing_is_named_by_the_recovery() -> None:
    found = attempts(
        [recovery(2, "B", "A", 105.0, 106.0), recovery(3, "C", "B", 112.0, 113.0)],
        [effect(1, 1, "A", 100.0), effect(2, 3, "C", 114.0)],
    )
    assert [(a.number, a.worker, a.effects) for a in found] == [
        (1, "A", [1]),
        (2, "B", []),  # B took the run over, then died before recording anything
        (3, "C", [2]),
    ]
    first_gap, second_gap = found[1].gap, found[2].gap
    assert first_gap is not None and second_gap is not None
    assert (first_gap.worker, first_gap.recovered_by, first_gap.seconds) == ("A", "B", 5.9)
    # B's last sign of life is its claim
    assert (second_gap.worker, second_gap.last_seen_at, second_gap.seconds) == ("B", 106.0, 7.0)
    assert found[0].gap is None


def test_records_older_than_the_epoch_column_give_no_attempts() -> None:
    old = EffectRow("r", 1, "step", "s1", "ok", "1", None, 1, 1.0, 2.0)
    assert attempts([], [old]) == []
