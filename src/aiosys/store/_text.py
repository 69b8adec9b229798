"""Storable text: every text parameter of every statement, made the same on both stores.

SQLite keeps a NUL character in TEXT and refuses a lone surrogate (its driver cannot encode
it); PostgreSQL refuses NUL in ``text`` and ``jsonb`` and psycopg cannot encode a lone
surrogate either. So one statement carrying such text would fail on one store and not on the
other, and a refused write fails the whole transaction it is in (a group commit: other
runs' records). Both stores therefore bind their parameters through ``bind`` (the SQLite
connection's and the psycopg cursor's ``execute``/``executemany``), so every named query
(kernel writes, ``fetch``/``execute``/``execute_many`` of the layers above, side writes) is
covered once, where parameters meet the driver.

The stored form writes NUL as ``\\u0000`` and a lone surrogate as ``\\udXXX``: JSON escapes.
For the JSON columns (outputs, inputs, errors, meta, payloads) this is lossless, because in
JSON text such characters can only stand inside strings, where the escape decodes back to
the original (``json.loads``); the kernel's own serializers already escape them, so JSON text
is normally unchanged. For plain text (a model error message in a usage row, a cancel reason)
it is a visible escape. Identities (idempotency keys, tenants, workflow and signal names)
are never silently altered: ``App`` refuses them before they reach a store
(``check_identifier``), with ``InvalidInput``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInput


def storable(text: str) -> str:
    """``text`` with NUL and lone surrogates written as JSON escapes (unchanged if it has
    none, which is checked first: the common case costs one scan)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:  # lone surrogates: "\ud800" -> "\\ud800"
            text = text.encode("utf-8", "backslashreplace").decode()
    return text


def bind(params: Any) -> Any:
    """A statement's parameters with every string made storable; others pass unchanged."""
    if not params:  # none (PRAGMAs, BEGIN, COMMIT): nothing to look at
        return params
    if type(params) is dict or isinstance(params, Mapping):  # a plain dict skips the ABC check
        return {k: storable(v) if isinstance(v, str) else v for k, v in params.items()}
    if isinstance(params, tuple | list):
        return [storable(v) if isinstance(v, str) else v for v in params]
    return params


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored as it is (a NUL, a lone surrogate), or None."""
    if "\x00" in text:
        return f"it holds a NUL character at position {text.index(chr(0))}"
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            return f"it holds a lone surrogate ({text[exc.start]!a}) at position {exc.start}"
    return None


def check_identifier(what: str, text: str) -> None:
    """Refuse an identity that a store cannot keep as it is, or an empty one (an unset
    shell variable, say): ``InvalidInput`` naming it."""
    if not text:
        raise InvalidInput(f"{what} is empty: give a non-empty name, or leave it out")
    problem = unstorable(text)
    if problem is not None:
        raise InvalidInput(
            f"{what} {text!a} cannot be stored: {problem}; identifiers must be plain text "
            "(no NUL characters, no lone surrogates)"
        )
