"""Any Python callable as a model: the ``local`` provider.

A card with ``provider = "local"`` names its callable in ``options["callable"]``:

- a name is looked up first in the registry filled in code with
  ``register_callable(name, fn)`` (or ``LocalProvider.register(name, fn)``);
- else ``"package.module:function"`` (or ``"module:Class.method"``) is imported on first
  use, for a card made in code or read from a card file the operator owns. A card read from
  the store (``card.from_store``) may name only registered callables: whoever can write a
  row of the database must not be able to run a function of their choice on every worker,
  so its ``module:function`` is a ``ConfigError`` saying to register it;
- without the option, the registry is asked for ``card.provider_model`` or ``card.id``.

What the callable is given, decided once from its signature:

- a first parameter named ``request`` or annotated ``ModelRequest`` gets the whole request;
- otherwise it gets the kind's input alone: chat → ``request.messages`` (a list of
  ``Message``), embed → ``request.texts``, summarize → ``request.text``, ocr →
  ``request.document`` (the path), or ``request.data`` when there is no path.

It may be sync (run in a worker thread, so it never blocks the event loop) or async. It
returns a ``ProviderResult`` (used as it is) or the plain output: a ``str`` for chat,
summarize and ocr, a list of vectors for embed (anything with ``tolist()``, such as a numpy
array, is converted). With a plain output the usage is counted here: input tokens with
``aiosys.models.tokens``, output tokens of a text output, and the seconds the call took.

Errors: an aiosys error raised by the callable passes through unchanged (raise
``ProviderUnavailable`` to ask the router for a retry or a fallback); any other exception is a
bug or a bad input that retrying will not mend, so it becomes ``ProviderRejected`` naming the
model and the exception. A callable that cannot be found or imported is a ``ConfigError``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import time
from collections.abc import Callable
from typing import Any

from ...errors import AiosysError, ConfigError, ProviderRejected
from ..catalog import ModelCard
from ..tokens import count_tokens, estimate_request_tokens
from ..types import Kind, ModelRequest, ProviderResult, Usage

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_callable(name: str, fn: Callable[..., Any]) -> None:
    """Make ``fn`` the local model ``name`` for every ``LocalProvider`` of this process."""
    if not callable(fn):
        raise ConfigError(f"register_callable({name!r}, ...): {fn!r} is not callable")
    _REGISTRY[name] = fn


def unregister_callable(name: str) -> None:
    """Forget the local model ``name`` (no error if it was never registered)."""
    _REGISTRY.pop(name, None)


class _Target:
    """A resolved callable and how to call it."""

    __slots__ = ("fn", "is_async", "ref", "wants_request")

    def __init__(self, ref: str, fn: Callable[..., Any]) -> None:
        self.ref = ref
        self.fn = fn
        # A coroutine function, or an object whose class defines ``async def __call__``.
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            type(fn).__call__
        )
        self.wants_request = _wants_request(fn)


class LocalProvider:
    """Python callables as models, for every kind."""

    name = "local"
    kinds: frozenset[Kind] = frozenset({"chat", "embed", "ocr", "summarize"})

    register = staticmethod(register_callable)
    unregister = staticmethod(unregister_callable)

    def __init__(self) -> None:
        self._imported: dict[str, Callable[..., Any]] = {}

    async def invoke(self, card: ModelCard, request: ModelRequest) -> ProviderResult:
        target = self._resolve(card)
        started = time.perf_counter()
        argument: Any = request if target.wants_request else _simple_input(request)
        try:
            if target.is_async:
                result = await target.fn(argument)
            else:
                result = await asyncio.to_thread(target.fn, argument)
                if inspect.isawaitable(result):  # a sync function that returned a coroutine
                    result = await result
        except AiosysError:
            raise
        except Exception as exc:
            raise ProviderRejected(
                f"{card.key}: local model {target.ref} raised {type(exc).__name__}: {exc}"
            ) from exc
        seconds = time.perf_counter() - started
        if isinstance(result, ProviderResult):
            return result
        output = _check_output(card, target.ref, request, result)
        return ProviderResult(
            output=output,
            usage=Usage(
                input_tokens=estimate_request_tokens(request),
                output_tokens=count_tokens(output) if isinstance(output, str) else 0,
                seconds=seconds,
            ),
            provider_model=target.ref,
        )

    async def close(self) -> None:
        self._imported.clear()

    def _resolve(self, card: ModelCard) -> _Target:
        option = card.options.get("callable")
        if option is not None and not isinstance(option, str):
            raise ConfigError(
                f"{card.key}: options.callable must be a string ('module:function' or a "
                f"registered name), got {option!r}"
            )
        ref = option or card.upstream_model
        fn = _REGISTRY.get(ref)
        if fn is None and ":" in ref and card.from_store:
            raise ConfigError(
                f"{card.key}: this card was read from the store, and a stored card may not "
                f"name code to import (options.callable {ref!r}): register the function in "
                f"code with aiosys.models.providers.local.register_callable({ref!r}, fn), or "
                "declare the card in code or in a card file the operator owns"
            )
        if fn is None and ":" in ref:
            fn = self._imported.get(ref) or self._import(card, ref)
        if fn is None:
            known = ", ".join(sorted(_REGISTRY)) or "none"
            raise ConfigError(
                f"{card.key}: no local model {ref!r}: register it with "
                f"aiosys.models.providers.local.register_callable({ref!r}, fn), or set the "
                f"card's options.callable to 'package.module:function' "
                f"(registered: {known})"
            )
        return _Target(ref, fn)

    def _import(self, card: ModelCard, ref: str) -> Callable[..., Any]:
        module_name, _, attr_path = ref.partition(":")
        if not module_name or not attr_path:
            raise ConfigError(
                f"{card.key}: options.callable {ref!r} is not 'package.module:function'"
            )
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(
                f"{card.key}: cannot import module {module_name!r} for local model {ref!r}: {exc}"
            ) from exc
        for attr in attr_path.split("."):
            try:
                obj = getattr(obj, attr)
            except AttributeError as exc:
                raise ConfigError(
                    f"{card.key}: module {module_name!r} has no {attr_path!r} (local model {ref!r})"
                ) from exc
        if not callable(obj):
            raise ConfigError(f"{card.key}: {ref!r} is {type(obj).__name__}, not a callable")
        self._imported[ref] = obj
        return obj  # type: ignore[no-any-return]


def _wants_request(fn: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # some builtins have no signature: give the plain input
        return False
    if not parameters:
        return False
    first = parameters[0]
    annotation = first.annotation
    return (
        first.name == "request"
        or annotation is ModelRequest
        or (isinstance(annotation, str) and annotation.rsplit(".", 1)[-1] == "ModelRequest")
    )


def _simple_input(request: ModelRequest) -> Any:
    if request.kind == "chat":
        return list(request.messages)
    if request.kind == "embed":
        return list(request.texts)
    if request.kind == "summarize":
        return request.text
    return request.document if request.document is not None else request.data


def _check_output(card: ModelCard, ref: str, request: ModelRequest, result: Any) -> Any:
    """The plain output in the kind's shape, or ProviderRejected saying what came back."""
    if request.kind != "embed":
        if isinstance(result, str):
            return result
        raise ProviderRejected(
            f"{card.key}: local model {ref} returned {type(result).__name__}; a {request.kind} "
            f"model returns a str or a ProviderResult"
        )
    if hasattr(result, "tolist"):
        result = result.tolist()
    try:
        vectors = [[float(x) for x in row] for row in result]
    except (TypeError, ValueError) as exc:
        raise ProviderRejected(
            f"{card.key}: local model {ref} returned {type(result).__name__}; an embed model "
            f"returns a list of vectors (lists of floats) or a ProviderResult"
        ) from exc
    if len(vectors) != len(request.texts):
        raise ProviderRejected(
            f"{card.key}: local model {ref} returned {len(vectors)} vectors for "
            f"{len(request.texts)} texts"
        )
    return vectors
