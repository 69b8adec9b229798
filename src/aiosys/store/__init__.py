"""Stores: the system of record and the work queue behind one ``Store`` protocol."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

from ..errors import ConfigError, StoreUnavailable
from .base import Store

DEFAULT_URL = "sqlite:///.aiosys/aiosys.db"


def resolve_url(url: str | None = None) -> str:
    """The store URL: the argument, else ``AIOSYS_STORE``, else ``store`` in ./aiosys.toml,
    else the default SQLite file under ./.aiosys/."""
    if url:
        return url
    env = os.environ.get("AIOSYS_STORE")
    if env:
        return env
    toml = Path("aiosys.toml")
    if toml.is_file():
        with toml.open("rb") as f:
            value = tomllib.load(f).get("store")
        if isinstance(value, str) and value:
            return value
    return DEFAULT_URL


def open_store(url: str | None = None) -> Store:
    """A store (not yet opened) for a URL: ``sqlite:///path`` or ``postgresql://...``."""
    url = resolve_url(url)
    if url.startswith("sqlite:"):
        from .sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql:", "postgres:")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    raise ConfigError(
        f"unsupported store URL {url!r}: use sqlite:///path/to/file.db or "
        "postgresql://user@host:port/dbname"
    )


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the store could not be reached or answer now (so a caller may
    try again later: HTTP 503), not that a request was wrong: ``StoreUnavailable``, a
    PostgreSQL connection refused or lost (psycopg's ``OperationalError``,
    ``InterfaceError``), a SQLite file that cannot be read or is locked
    (``sqlite3.OperationalError``). A driver never imported raised nothing."""
    if isinstance(exc, StoreUnavailable):
        return True
    kinds: list[type[BaseException]] = []
    pg = sys.modules.get("psycopg")
    if pg is not None:
        kinds += [pg.OperationalError, pg.InterfaceError]
    lite = sys.modules.get("sqlite3")
    if lite is not None:
        kinds.append(lite.OperationalError)
    return isinstance(exc, tuple(kinds))


__all__ = ["DEFAULT_URL", "Store", "open_store", "resolve_url", "unavailable"]
