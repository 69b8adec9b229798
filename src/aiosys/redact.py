"""Secrets kept out of what aiosys says: error messages, log lines and the records built
from them.

Two kinds of secret reach messages. A URL's password (``postgresql://u:pw@host/db``,
``redis://:pw@host``, an endpoint with credentials) comes in the URL itself or quoted back by
a driver's own error; an API key comes quoted back by a server's error body. ``mask_url``
masks the password of one URL; ``redact`` masks, in any text, every URL password, every
``password=...`` of a libpq connection string and every known secret value it is given.
Masked parts read ``***``.

Where a server runs is kept from its callers too: a model provider's error names the
deployment's endpoint and its transport's error the host and port (for the operator's log);
``withhold_addresses`` takes them out of a text a client is shown.
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


_URL = r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]*[^\s\"'<>:,;.)\]]"
_AT_URL = re.compile(r"\s+(?:at|from)\s+" + _URL)  # "chat@1 at http://gpu-1:8000/v1 failed"
_ANY_URL = re.compile(_URL)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\w.])")
_IPV6 = re.compile(r"\[[0-9a-fA-F:.%\w]*:[0-9a-fA-F:.%\w]*\](?::\d{1,5})?")
# A socket address as Python prints it: ('10.0.0.5', 8000) or ('::1', 8000, 0, 0)
_SOCKADDR = re.compile(r"\(\s*(['\"])[^'\"]*\1(?:\s*,\s*\d+)+\s*\)")
HOST = "[host]"


def withhold_addresses(text: str) -> str:
    """``text`` without the addresses of the servers it names: a URL after "at" or "from"
    is left out with that word (``"chat@1 at http://gpu-1:8000/v1 failed"`` -> ``"chat@1
    failed"``), any other URL reads ``[url]``; the hosts of those URLs, IP addresses and
    socket addresses (``gpu-1:8000``, ``10.0.0.5``, ``('10.0.0.5', 8000)``) read ``[host]``."""
    hosts: set[str] = set()
    for url in _ANY_URL.findall(text):
        try:
            host = urlsplit(url).hostname
        except ValueError:
            continue
        if host:
            hosts.add(host)
    text = _AT_URL.sub("", text)
    text = _ANY_URL.sub("[url]", text)
    text = _SOCKADDR.sub(HOST, text)
    text = _IPV6.sub(HOST, text)
    for host in sorted(hosts, key=len, reverse=True):
        named = rf"(?<![\w.-]){re.escape(host)}(?::\d{{1,5}})?(?![\w.-])"
        text = re.sub(named, HOST, text, flags=re.IGNORECASE)
    return _IPV4.sub(HOST, text)


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
