"""Durations and cutoffs as written in settings and on the command line (``aiosys.durations``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiosys.durations import parse_before, parse_duration, parse_time, seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", 45.0),
        ("90m", 5400.0),
        ("12h", 43_200.0),
        ("30d", 2_592_000.0),
        ("2w", 1_209_600.0),
        ("1d12h", 129_600.0),
        ("1.5h", 5400.0),
        (" 7D ", 604_800.0),
        ("0s", 0.0),
    ],
)
def test_a_duration_is_its_parts_in_seconds(text: str, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "30x", "-5d", "30 d", "3d-", "1y", "h12", "1e3s"])
def test_anything_else_is_not_a_duration_and_the_error_names_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration such as 30d, 12h, 90m, 45s, 2w"):
        parse_duration(text)


def test_an_iso_time_without_an_offset_is_utc() -> None:
    assert parse_time("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC).timestamp()
    assert parse_time("2024-05-01T12:00:00Z") == datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()
    assert parse_time("2024-05-01T14:00:00+02:00") == parse_time("2024-05-01T12:00:00")
    with pytest.raises(ValueError, match="not an ISO 8601 date"):
        parse_time("May 1st")


def test_before_is_a_duration_ago_or_a_point_in_time() -> None:
    now = 1_715_000_000.0
    assert parse_before("30d", now) == now - 30 * 86_400
    assert parse_before("2024-05-01", now) == datetime(2024, 5, 1, tzinfo=UTC).timestamp()
    with pytest.raises(ValueError, match=r"'soon' is neither a duration .* nor an ISO 8601"):
        parse_before("soon", now)


def test_a_length_of_time_takes_seconds_a_timedelta_or_a_duration() -> None:
    assert seconds(90, "x") == 90.0
    assert seconds(1.5, "x") == 1.5
    assert seconds(timedelta(days=1), "x") == 86_400.0
    assert seconds("1w", "x") == 604_800.0
    for bad in (0, -1, float("inf"), float("nan"), timedelta(0), "0s"):
        with pytest.raises(ValueError, match="retention must be a positive length of time"):
            seconds(bad, "retention")
    for wrong in (True, None, [30]):
        with pytest.raises(ValueError, match="retention must be seconds, a timedelta or"):
            seconds(wrong, "retention")  # type: ignore[arg-type]
