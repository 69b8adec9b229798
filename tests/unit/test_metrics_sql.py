"""The histograms' buckets are counted in SQL (sql/metrics.sql): every CASE there writes the
bounds of ``aiosys.observe.metrics.BUCKETS``, in order, with +Inf last."""

from __future__ import annotations

import re

import pytest

from aiosys.observe.metrics import BUCKETS
from aiosys.store._sql import load_queries

HISTOGRAMS = (
    "metrics_run_seconds",
    "metrics_queue_wait_seconds",
    "metrics_effect_seconds",
    "metrics_model_seconds",
)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_every_histogram_query_buckets_by_the_bounds_of_buckets(dialect: str) -> None:
    queries = load_queries(dialect)
    bucketed = {name for name, sql in queries.items() if " AS bucket" in sql}
    assert bucketed == set(HISTOGRAMS)
    for name in HISTOGRAMS:
        sql = queries[name]
        whens = re.findall(r"WHEN d <= ([0-9.]+) THEN (\d+)", sql)
        assert [(float(b), int(i)) for b, i in whens] == [(b, i) for i, b in enumerate(BUCKETS)], (
            name
        )
        assert f"ELSE {len(BUCKETS)} END AS bucket" in " ".join(sql.split()), name
