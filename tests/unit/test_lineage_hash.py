"""Content hashes (SHA-256 of RFC 8785 JSON) and the lineage settings."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid
from pathlib import Path

import pytest
from pydantic import BaseModel

from aiosys.errors import ConfigError
from aiosys.governance.lineage import LineageSettings
from aiosys.governance.lineage_hash import (
    MAX_PARTS,
    PART,
    canonical,
    content_hash,
    hashes,
    json_hash,
)


def sha(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


def test_the_hash_is_sha256_of_rfc8785_json() -> None:
    # Keys sorted, no whitespace, numbers as ECMAScript writes them (RFC 8785, 3.2.2.3).
    value = {"b": [1, 2.0, 1e-7, 1e21, 0.1], "a": "é", "c": None, "d": True}
    expected = b'{"a":"\xc3\xa9","b":[1,2,1e-7,1e+21,0.1],"c":null,"d":true}'
    assert canonical(value) == expected
    assert content_hash(value) == sha(expected)
    assert content_hash("a.pdf") == sha(b'"a.pdf"')
    # The same value from its stored JSON text hashes alike.
    assert json_hash('{"d": true, "c": null, "a": "\\u00e9", "b": [1, 2.0, 1e-7, 1e21, 0.1]}') == (
        content_hash(value)
    )


def test_a_value_is_hashed_in_its_json_form() -> None:
    class Doc(BaseModel):
        path: str
        pages: int

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert content_hash(Doc(path="a", pages=2)) == content_hash({"path": "a", "pages": 2})
    assert content_hash(Point(1, 2)) == content_hash({"x": 1, "y": 2})
    assert content_hash((1, "a")) == content_hash([1, "a"])
    assert content_hash(when) == content_hash("2026-01-02T03:04:05Z")
    ident = uuid.UUID(int=7)
    assert content_hash(ident) == content_hash(str(ident))
    assert content_hash(b"\x00\xff") == content_hash("AP8=")  # bytes as base64 text


def test_a_value_without_an_rfc8785_form_has_no_hash() -> None:
    assert content_hash(object()) is None
    assert content_hash(2**53) is None  # beyond what RFC 8785 numbers hold
    assert content_hash(float("nan")) is None
    assert content_hash("\ud800") is None  # a lone surrogate is not Unicode text
    assert json_hash("not json") is None and json_hash(None) is None


def test_parts_are_the_members_worth_linking() -> None:
    whole, parts = hashes({"text": "abc", "n": 3, "flag": True, "none": None, "tags": ["x"]})
    assert whole == content_hash({"text": "abc", "n": 3, "flag": True, "none": None, "tags": ["x"]})
    assert parts == [content_hash("abc")[:PART], content_hash(["x"])[:PART]]  # type: ignore[index]
    assert hashes("plain")[1] == []
    assert hashes(list(range(MAX_PARTS + 1)))[1] == []  # too many members: none

    class In(BaseModel):
        text: str

    assert hashes(In(text="abc"))[1] == [content_hash("abc")[:PART]]  # type: ignore[index]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIOSYS_LINEAGE", raising=False)
    return tmp_path


def test_settings_come_from_the_argument_the_environment_or_aiosys_toml(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert LineageSettings.resolve().enabled is True
    (here / "aiosys.toml").write_text("lineage = false\n")
    assert LineageSettings.resolve().enabled is False
    (here / "aiosys.toml").write_text("[lineage]\nenabled = false\n")
    assert LineageSettings.resolve().enabled is False
    monkeypatch.setenv("AIOSYS_LINEAGE", "on")
    assert LineageSettings.resolve().enabled is True  # the environment before the file
    assert LineageSettings.resolve(False).enabled is False  # the argument before both
    monkeypatch.setenv("AIOSYS_LINEAGE", "sometimes")
    with pytest.raises(ConfigError, match="lineage must be on or off, not 'sometimes'"):
        LineageSettings.resolve()
    monkeypatch.delenv("AIOSYS_LINEAGE")
    (here / "aiosys.toml").write_text("lineage = 3\n")
    with pytest.raises(ConfigError, match="lineage must be on or off, not 3"):
        LineageSettings.resolve()
    (here / "aiosys.toml").write_text("lineage = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        LineageSettings.resolve()
