"""The cap on a request's body (``aiosys.api._limits``): sizes as people write them, and
where the cap is read from (argument, environment, aiosys.toml, the 8 MiB default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiosys.api._limits import DEFAULT_MAX_BODY_SIZE, parse_size, resolve_max_body_size
from aiosys.errors import ConfigError


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIOSYS_MAX_BODY_SIZE", raising=False)


@pytest.mark.parametrize(
    ("written", "size"),
    [
        (0, 0),
        (1024, 1024),
        ("1024", 1024),
        ("512KiB", 512 * 1024),
        ("8 MiB", 8 * 1024 * 1024),
        ("1.5mib", 3 * 512 * 1024),
        ("2GB", 2_000_000_000),
        ("10kb", 10_000),
        ("7B", 7),
    ],
)
def test_sizes_as_people_write_them(written, size):
    assert parse_size(written) == size


@pytest.mark.parametrize("written", [-1, True, 1.5, "", "MiB", "-5", "8 parsecs", "1e6", None])
def test_anything_else_is_refused_naming_the_forms(written):
    with pytest.raises(ValueError, match="is not a number of bytes or a size such as"):
        parse_size(written)


def test_the_cap_comes_from_the_argument_then_the_environment_then_aiosys_toml(
    tmp_path, monkeypatch
):
    assert resolve_max_body_size() == DEFAULT_MAX_BODY_SIZE == 8 * 1024 * 1024
    (tmp_path / "aiosys.toml").write_text("[server]\nmax_body_size = 4096\n")
    assert resolve_max_body_size() == 4096
    monkeypatch.setenv("AIOSYS_MAX_BODY_SIZE", "1MiB")
    assert resolve_max_body_size() == 1024 * 1024
    assert resolve_max_body_size("2KiB") == 2048
    assert resolve_max_body_size(100) == 100


def test_a_cap_that_is_no_size_is_a_config_error_naming_where(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"^max_body_size: 'big' is not"):
        resolve_max_body_size("big")
    monkeypatch.setenv("AIOSYS_MAX_BODY_SIZE", "-3")
    with pytest.raises(ConfigError, match=r"^AIOSYS_MAX_BODY_SIZE: '-3' is not"):
        resolve_max_body_size()
    monkeypatch.delenv("AIOSYS_MAX_BODY_SIZE")
    (tmp_path / "aiosys.toml").write_text("[server]\nmax_body_size = true\n")
    with pytest.raises(ConfigError, match=r"^aiosys.toml \[server\] max_body_size: True is"):
        resolve_max_body_size()
    (tmp_path / "aiosys.toml").write_text("server = 3\n")
    with pytest.raises(ConfigError, match=r"\[server\] must be a table"):
        resolve_max_body_size()
