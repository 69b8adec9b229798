"""Secrets kept out of what aiosys says: error messages, log lines and the records built
from them.

Two kinds of secret reach messages. A URL's password (``postgresql://u:pw@host/db``,
``redis://:pw@host``, an endpoint with credentials) comes in the URL itself or quoted back by
a driver's own error; an API key comes quoted back by a server's error body. ``mask_url``
masks the password of one URL; ``redact`` masks, in any text, every URL password, every
``password=...`` of a libpq connection string and every known secret value it is given.
Masked parts read ``***``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MASK = "***"

# scheme://user:password@  (the password ends at the last @ before the host)
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*:)([^\s/]*)(@)")
# libpq key=value: password=secret, password = 'sec ret'
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)
_SHORTEST = 4  # shorter "secrets" (an empty or test value) would mask ordinary words


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL urllib can read: mask by pattern
        return redact(url)
    if not password:
        return redact(url)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:{MASK}@{host}").geturl()


def url_password(url: str) -> str | None:
    """The password of ``url`` (None: none, or not a URL), to mask where it is quoted."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with URL passwords, ``password=`` values and each of ``secrets`` (API keys,
    passwords: values of at least 4 characters) masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= _SHORTEST}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    return _KV_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}", text)


__all__ = ["MASK", "mask_url", "redact", "url_password"]
