"""What the HTTP providers share in driving an official SDK: API keys, request parameters,
and clients (one per endpoint, API key and event loop).

A client holds a connection pool, so it is made once and reused. Its connections belong to
the event loop that opened them, and a process may run several loops one after another
(``asyncio.run`` per script call, a loop per test), so the loop is part of the key and
clients of closed loops are dropped.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from ...errors import ProviderRejected
from ..catalog import ModelCard


class _Closable(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)

# Local servers (vLLM, Ollama, llama.cpp) want no key, but the SDKs insist on one.
NO_KEY = "not-needed"


def api_key(card: ModelCard) -> tuple[str, str]:
    """The key for ``card`` (from the environment variable the card names) and a hint for
    error messages. Without a variable, or with it unset, the key is ``"not-needed"``: the
    SDKs never read their own default variables behind the card's back."""
    if not card.api_key_env:
        return NO_KEY, "the card names no api_key_env"
    value = os.environ.get(card.api_key_env)
    if not value:
        return NO_KEY, f"api key from ${card.api_key_env}, which is not set"
    return value, f"api key from ${card.api_key_env}"


@functools.cache
def _parameter_names(method: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(method).parameters)


def split_params(
    card: ModelCard, params: dict[str, Any], method: Callable[..., Any], reserved: Iterable[str]
) -> dict[str, Any]:
    """Keyword arguments for the SDK ``method`` from a request's ``params``: the ones it
    names are passed as they are, the others go in ``extra_body`` (so server-specific
    options such as vLLM's ``top_k`` reach the server). ``reserved`` ones are set by the
    provider from the card and the request; a request that sets them is refused."""
    _refuse_reserved(card, params, reserved)
    known = _parameter_names(method)
    kwargs = {k: v for k, v in params.items() if k in known and k != "extra_body"}
    extra = {k: v for k, v in params.items() if k not in known}
    extra.update(params.get("extra_body") or {})
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


# Request params that are the SDK's request options, not body fields.
_OPTIONS = {"extra_headers": "headers", "extra_query": "params"}


def request_body(
    card: ModelCard, params: dict[str, Any], reserved: Iterable[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON body and the SDK request options for a raw ``client.post`` from a request's
    ``params``: every param is a body field (``extra_body`` is merged in), except
    ``extra_headers`` / ``extra_query``, which become options. ``reserved`` ones are refused
    as in ``split_params``."""
    _refuse_reserved(card, params, reserved)
    body: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for k, v in params.items():
        if k in _OPTIONS:
            options[_OPTIONS[k]] = v
        elif k != "extra_body":
            body[k] = v
    body.update(params.get("extra_body") or {})
    return body, options


def _refuse_reserved(card: ModelCard, params: dict[str, Any], reserved: Iterable[str]) -> None:
    clash = sorted(set(params).intersection(reserved))
    if clash:
        raise ProviderRejected(
            f"{card.key}: request params may not set {', '.join(map(repr, clash))}: "
            "the provider sets them from the card and the request (app.models.stream streams)"
        )


class ClientCache(Generic[C]):
    """``factory(endpoint, key, timeout)`` makes a client; ``get`` returns the one for this
    card on the running loop."""

    def __init__(self, factory: Callable[[str | None, str, float], C]) -> None:
        self._factory = factory
        self._clients: dict[tuple[int, str | None, str], tuple[asyncio.AbstractEventLoop, C]] = {}

    def get(self, card: ModelCard, key: str) -> C:
        loop = asyncio.get_running_loop()
        slot = (id(loop), card.endpoint, key)
        entry = self._clients.get(slot)
        if entry is not None and entry[0] is loop:
            return entry[1]
        self._clients = {k: v for k, v in self._clients.items() if not v[0].is_closed()}
        client = self._factory(card.endpoint, key, card.timeout)
        self._clients[slot] = (loop, client)
        return client

    async def close(self) -> None:
        """Close the clients of the running loop; forget all (others' loops are gone or
        not ours to touch)."""
        loop = asyncio.get_running_loop()
        clients, self._clients = self._clients, {}
        for owner, client in clients.values():
            if owner is loop:
                await client.close()
