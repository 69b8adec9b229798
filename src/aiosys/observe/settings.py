"""Tracing settings: on or off, and whether model prompt and completion text go on spans."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

_TRUE, _FALSE = {"1", "true", "on", "yes"}, {"0", "false", "off", "no"}


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """``enabled``: spans for every run and effect, kept in the store and exported by OTLP
    when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set; on by default.
    ``content``: model prompts and completions recorded on model-call spans
    (``gen_ai.input.messages``, ``gen_ai.output.messages``); off by default.

    ``resolve`` takes each from the argument, else the environment (``AIOSYS_TRACING``,
    ``AIOSYS_TRACING_CONTENT``: on/off), else ``[tracing]`` in ./aiosys.toml (``enabled``,
    ``content``: booleans), else the default. A value that is not on/off is a
    ``ConfigError``."""

    enabled: bool = True
    content: bool = False

    @classmethod
    def resolve(cls, enabled: bool | None = None, content: bool | None = None) -> TracingSettings:
        toml = _toml_tracing()
        on = _flag("enabled", enabled, "AIOSYS_TRACING", toml)
        text = _flag("content", content, "AIOSYS_TRACING_CONTENT", toml)
        return cls(enabled=True if on is None else on, content=bool(text))


def _flag(name: str, arg: bool | None, env: str, toml: dict[str, Any]) -> bool | None:
    value: Any = arg
    if value is None:
        value = os.environ.get(env) or None
    if value is None:
        value = toml.get(name)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ConfigError(f"tracing {name} must be on or off, not {value!r}")


def _toml_tracing() -> dict[str, Any]:
    path = Path("aiosys.toml")
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            table = tomllib.load(f).get("tracing", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"aiosys.toml is not valid TOML: {exc}") from None
    if not isinstance(table, dict):
        raise ConfigError("aiosys.toml: [tracing] must be a table")
    return table
