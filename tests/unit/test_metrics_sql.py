"""The histograms' buckets are counted in SQL (sql/metrics.sql): every histogram query has one
column ``le_<i>`` per bound of ``aiosys.observe.metrics.BUCKETS``, in order, and ``n``."""

from __future__ import annotations

import re

import pytest

from aiosys.observe.metrics import BUCKETS
from aiosys.store._sql import load_queries

HISTOGRAMS = (
    "metrics_run_seconds",
    "metrics_queue_wait_seconds",
    "metrics_effects",
    "metrics_model_seconds",
)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_every_histogram_query_buckets_by_the_bounds_of_buckets(dialect: str) -> None:
    queries = load_queries(dialect)
    bucketed = {name for name, sql in queries.items() if " AS le_0" in sql}
    assert bucketed == set(HISTOGRAMS)
    for name in HISTOGRAMS:
        sql = " ".join(queries[name].split())
        columns = re.findall(r"sum\(CASE WHEN d <= ([0-9.]+) THEN 1 ELSE 0 END\) AS le_(\d+)", sql)
        assert [(float(b), int(i)) for b, i in columns] == [
            (b, i) for i, b in enumerate(BUCKETS)
        ], name
        assert "count(*) AS n" in sql and "sum(d) AS total" in sql, name
