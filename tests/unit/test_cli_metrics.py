"""``aiosys metrics`` in-process: the text format on an empty store, one error line for a bad
store or another tenant's series asked with a key."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from tests.unit.clirunner import aiosys, ok, reported_error


def test_an_empty_store_has_no_runs_and_no_workers(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/m.db"
    text = ok(aiosys("metrics", "--store", store)).stdout
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["aiosys_workers"].samples[0].value == 0
    assert families["aiosys_runs_created"].samples == []


def test_a_malformed_store_url_is_one_error_line(tmp_path: Path) -> None:
    error = reported_error(aiosys("metrics", "--store", "sqlite:/x.db"))
    assert "malformed store URL" in error
