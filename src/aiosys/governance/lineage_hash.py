"""Content hashes: how lineage names the values effects consume and produce.

A value's hash is the SHA-256 (hex) of its RFC 8785 (JCS) JSON in UTF-8: keys sorted, no
whitespace, numbers as ECMAScript writes them (``rfc8785``, Trail of Bits). So anyone can
check a hash with a few lines in any language, and two equal values hash alike wherever they
were made. The JSON form is the one the store keeps: a pydantic model, a dataclass, a date,
a UUID, a tuple are taken as pydantic encodes them (``bytes`` as base64 text). A value with
no RFC 8785 form (an object pydantic cannot encode, an integer beyond 2**53, text with a
lone surrogate, NaN) has no hash: None, never an error (lineage must not fail an effect).

Besides its own hash, a container value has *parts*: the hashes of its members (a dict's
values, a list's items; text, lists and dicts, not numbers, booleans or null), shortened to
``PART`` hex digits, at most ``MAX_PARTS`` of them. Lineage links an effect to an earlier
one when the value it took, or a member of it, equals the other's output or a member of that
(a task's input ``{"text": text}`` holds the OCR step's output ``text``): ``lineage_graph``.

A file an effect reads by its path (an OCR request's ``document``) is named apart, by the
SHA-256 of its bytes (``file_hash``: what ``sha256sum`` prints): the path alone says nothing
of which scan was read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pydantic_core
import rfc8785

#: Hex digits of a part's hash (64 bits: enough to tell a run's values apart).
PART = 16
#: Members of a container that get a part hash; a bigger container gets none.
MAX_PARTS = 32
_PLAIN = (str, int, float, bool, type(None))
_sha256 = hashlib.sha256
_LINKABLE = (str, list, tuple, dict)


#: Integers RFC 8785 holds exactly (IEEE 754 doubles).
_INT_MAX = 2**53 - 1
_dumps_str = json.encoder.encode_basestring  # json.dumps's own, in C: JCS's escapes (below)


def canonical(value: Any) -> bytes | None:
    """The RFC 8785 JSON of ``value`` (its JSON form, see the module docstring); None if it
    has none."""
    t = type(value)
    # The commonest arguments, written directly: RFC 8785 escapes in a string only '"', '\\'
    # and the controls below U+0020 (as \b \t \n \f \r, else \u00xx), as json does
    # with ensure_ascii off; an int is its digits.
    if t is str:
        try:
            return _dumps_str(value).encode()
        except UnicodeEncodeError:  # a lone surrogate
            return None
    if t is int and -_INT_MAX <= value <= _INT_MAX:
        return str(value).encode()
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        if isinstance(exc, rfc8785.IntegerDomainError | rfc8785.FloatDomainError):
            return None
    except (TypeError, ValueError, RecursionError):
        return None
    try:  # not plain JSON: its JSON form as the store keeps it
        plain = pydantic_core.to_jsonable_python(value, bytes_mode="base64")
        return rfc8785.dumps(plain)
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError, RecursionError):
        return None


def content_hash(value: Any) -> str | None:
    """SHA-256 (64 hex digits) of ``value``'s RFC 8785 JSON; None when it has none."""
    text = canonical(value)
    return None if text is None else _sha256(text).hexdigest()


def file_hash(path: str | os.PathLike[str]) -> str | None:
    """SHA-256 (64 hex digits) of the bytes of the file at ``path`` (``~`` expanded), as
    ``sha256sum`` prints it; None when it cannot be read. Blocking I/O: call it off the
    event loop."""
    try:
        with Path(path).expanduser().open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except (OSError, ValueError):
        return None


def json_hash(text: str | None) -> str | None:
    """``content_hash`` of the value that JSON ``text`` (a stored input, output or result)
    holds; None for no text or text that is not JSON."""
    if text is None:
        return None
    try:
        return content_hash(json.loads(text))
    except ValueError:
        return None


def hashes(value: Any) -> tuple[str | None, list[str]]:
    """``(hash, parts)`` of ``value`` (see the module docstring)."""
    whole = content_hash(value)
    return whole, parts(value)


def parts(value: Any) -> list[str]:
    """The part hashes of a container ``value`` (empty for anything else)."""
    if isinstance(value, dict):
        members = list(value.values())
    elif isinstance(value, list | tuple):
        members = list(value)
    else:
        try:  # a model or dataclass: its members as JSON
            if isinstance(value, _PLAIN):
                return []
            plain = pydantic_core.to_jsonable_python(value, bytes_mode="base64")
        except (pydantic_core.PydanticSerializationError, TypeError, ValueError):
            return []
        return parts(plain) if isinstance(plain, dict | list) else []
    if len(members) > MAX_PARTS:
        return []
    out = []
    for member in members:
        if isinstance(member, _LINKABLE):
            h = content_hash(member)
            if h is not None:
                out.append(h[:PART])
    return out


def value_keys(text: str | None) -> tuple[str | None, list[str]]:
    """``hashes`` of the value JSON ``text`` holds (a stored output or result)."""
    if text is None:
        return None, []
    try:
        value = json.loads(text)
    except ValueError:
        return None, []
    return hashes(value)


__all__ = [
    "MAX_PARTS",
    "PART",
    "canonical",
    "content_hash",
    "file_hash",
    "hashes",
    "json_hash",
    "parts",
]
