"""Load named SQL blocks from ``sql/queries.sql`` and a dialect's own ``sql/<dialect>/``.

A block starts with ``-- name: <name>``; the next comment line says what it does. Parameters
are written ``:name``; ``paramstyle="pyformat"`` turns them into psycopg's ``%(name)s``.
Hand-written because it is 30 lines and no maintained library does just this without an ORM.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def _parse(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    blocks: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        blocks[name] = "\n".join(lines).strip()
    return blocks


_MIGRATION = re.compile(r"^(\d{4})_\w+\.sql$")


def load_queries(dialect: str, paramstyle: str = "named") -> dict[str, str]:
    """Every named block of ``sql/*.sql`` (the kernel's ``queries.sql``, the model layer's
    ``models.sql``, ...), then the dialect's own files overriding blocks of the same name."""
    root = resources.files("aiosys.store") / "sql"
    queries: dict[str, str] = {}
    for folder in (root, root / dialect):
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".sql") and not _MIGRATION.match(entry.name):
                queries.update(_parse(entry.read_text()))
    if paramstyle == "pyformat":
        queries = {k: _PARAM.sub(r"%(\1)s", v.replace("%", "%%")) for k, v in queries.items()}
    return queries


def migrations(dialect: str) -> list[tuple[int, str]]:
    """The dialect's migrations as (version, SQL), in order."""
    folder = resources.files("aiosys.store") / "sql" / dialect
    found = []
    for entry in folder.iterdir():
        m = _MIGRATION.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.read_text()))
    return sorted(found)
