"""``aiosys server``'s refusals, each one ``error:`` line: a ``--config`` that names no
aiosys.toml, an app that is not an ``aiosys.App``, a store that cannot be opened."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.clirunner import aiosys, reported_error

TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    monkeypatch.chdir(tmp_path)


def test_config_must_name_an_aiosys_toml(tmp_path: Path) -> None:
    assert "no such file" in reported_error(aiosys("server", "--config", str(tmp_path)))
    other = tmp_path / "settings.toml"
    other.write_text("")
    error = reported_error(aiosys("server", "--config", str(other)))
    assert "name an aiosys.toml file" in error


def test_a_kernel_app_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bare.py").write_text("from aiosys.kernel import App\napp = App()\n")
    error = reported_error(aiosys("server", "--app", "bare:app"))
    assert "serves an aiosys.App" in error


def test_a_store_that_cannot_be_opened_is_one_error_line(tmp_path: Path) -> None:
    error = reported_error(aiosys("server", "--store", f"sqlite:///{tmp_path}/no/dir/a.db"))
    assert "does not exist" in error


def test_a_body_cap_that_is_no_size_is_one_error_line(tmp_path: Path) -> None:
    error = reported_error(aiosys("server", "--max-body-size", "lots"))
    assert "max_body_size: 'lots' is not a number of bytes or a size" in error
    (tmp_path / "aiosys.toml").write_text('[server]\nmax_body_size = "8 parsecs"\n')
    error = reported_error(aiosys("server"))
    assert "aiosys.toml [server] max_body_size: '8 parsecs'" in error
