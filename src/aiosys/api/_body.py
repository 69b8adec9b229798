"""What is wrong with a request body FastAPI could not read as JSON, for both error shapes
(RFC 9457 problems and the gateway's OpenAI errors), so each says it the same precise way.

FastAPI reads a route's body as JSON only when its ``Content-Type`` is ``application/json``
(or ``+json``); any other type (or none: ``curl -d`` sends a form's) hands the model the raw
bytes, which it refuses as "not a valid dictionary", a message that hides the cause. A body
that is not UTF-8 is FastAPI's bare ``HTTPException`` ("There was an error parsing the
body"), and a JSON syntax error names only its offset. ``body_fault`` turns each into
``(status, message)``:

- 413: the body is over the server's cap (``aiosys.api._limits``), which it names;
- 415: the body was not sent as JSON (``Content-Type`` named, or its absence);
- 400: the body is not UTF-8 (the byte and its offset), nests deeper than the parser can
  follow, holds an integer longer than Python converts (4300 digits), or is not JSON
  (the parser's reason, its line, column and offset).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

#: The statuses ``body_fault`` answers (every route that takes a body declares them).
STATUSES = (400, 413, 415)


def body_fault(request: Request, exc: BaseException) -> tuple[int, str] | None:
    """``(status, message)`` when ``exc`` (raised while FastAPI read ``request``'s body) means
    the body could not be read as JSON at all; None for any other error (a JSON body that
    does not validate is the caller's to answer)."""
    if isinstance(exc, HTTPException):
        if exc.status_code == 413:  # FastAPI's count of a body with no declared length
            return body_too_large(request)
        cause = exc.__cause__
        if exc.status_code != 400 or cause is None:
            return None
        if isinstance(cause, UnicodeDecodeError):
            byte = cause.object[cause.start : cause.start + 1].hex()
            return 400, (
                f"the body is not UTF-8 text: byte 0x{byte} at offset {cause.start} cannot be "
                "decoded; send JSON encoded as UTF-8"
            )
        if isinstance(cause, RecursionError):
            return 400, (
                "the body's JSON nests arrays and objects deeper than the parser can follow "
                f"(about {sys.getrecursionlimit()} levels)"
            )
        if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
            return 400, (
                f"the body's JSON holds an integer of more than {sys.get_int_max_str_digits()} "
                "digits; send it as a string"
            )
        return 400, f"the body could not be read as JSON: {type(cause).__name__}: {cause}"
    if not isinstance(exc, RequestValidationError):
        return None
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            return 400, f"the body is not JSON: {_json_reason(error, exc.body)}"
        if loc == ("body",) and isinstance(error.get("input"), bytes | bytearray):
            sent = request.headers.get("content-type")
            what = f"Content-Type {sent!r}" if sent else "no Content-Type"
            return 415, (
                f"the body must be JSON sent with Content-Type: application/json ({what} was sent)"
            )
    return None


def http_detail(request: Request, exc: HTTPException) -> str:
    """What an ``HTTPException`` the router raised says, in either error shape: a method
    the path does not take names both (``GET is not allowed on /v1/chat/completions: it
    takes POST``; Starlette's detail is the status's phrase alone), else its detail."""
    allow = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow")
    if exc.status_code == 405 and allow:
        return f"{request.method} is not allowed on {request.url.path}: it takes {allow}"
    return str(exc.detail)


def too_large(limit: int | None) -> str:
    """What a 413 says: the cap, in bytes and as people read it."""
    if limit is None:
        return "the request body is larger than the server accepts"
    return (
        f"the request body is larger than the server's limit of {limit} bytes "
        f"({_human(limit)}); send a smaller body"
    )


def _human(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


def body_too_large(request: Request) -> tuple[int, str]:
    """``(413, message)`` for a body over the cap the request was served under."""
    limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
    return 413, too_large(limit if isinstance(limit, int) else None)


def _json_reason(error: dict[str, Any], doc: Any) -> str:
    reason = str((error.get("ctx") or {}).get("error") or error.get("msg") or "malformed")
    loc = tuple(error.get("loc", ()))
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    if pos is None:
        return reason
    if isinstance(doc, str | bytes | bytearray):
        text = doc if isinstance(doc, str) else bytes(doc).decode("utf-8", "replace")
        located = json.JSONDecodeError(reason, text, min(pos, len(text)))
        return f"{reason}: line {located.lineno} column {located.colno} (offset {pos})"
    return f"{reason} (offset {pos})"


__all__ = ["STATUSES", "body_fault", "body_too_large", "http_detail", "too_large"]
