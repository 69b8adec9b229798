"""HTTP providers' failures, translated into aiosys errors at the boundary.

The official SDKs raise their own exception trees (``openai.APIError``,
``anthropic.APIError``). Nothing above a provider sees those types: ``sdk_errors`` turns
them into

- ``ProviderUnavailable`` (transient; the router may retry or fall back): 429 with the
  provider's ``retry-after-ms`` / ``retry-after`` hint, 408, 409, 5xx, timeouts, connection
  errors, and malformed responses (not JSON, or JSON without the fields the API promises);
- ``DeploymentUnusable`` (a ``ProviderRejected``): 401, 403, 404, faults of the deployment
  (a wrong or revoked key, no access, a missing model): the router falls back to the next
  candidate and opens the deployment's breaker;
- ``ProviderRejected`` (permanent): every other 4xx (400, 422, ...), faults of the request,
  with the status and the provider's own error message.

The transient statuses are the ones both SDKs retry themselves (408, 409, 429, >= 500);
aiosys turns the SDKs' retries off and lets its router do them. Every message names the card
and the endpoint, so a log line says which deployment failed.

Secrets never reach those messages: the card's API key, quoted back by a server's error
body, and an endpoint's credentials (``https://user:pw@host``) are masked (``redact.py``).

``classify`` gives the kernel's retry policy the same verdicts for SDK or raw ``httpx``
errors that escape some other way (``install_classifier`` registers it once).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import aiohttp
import anthropic
import httpx
import httpx2
import openai

from ...errors import DeploymentUnusable, ProviderRejected, ProviderUnavailable
from ...kernel.retry import add_classifier
from ...redact import mask_url, redact, url_password
from ..catalog import ModelCard
from ._sdk import api_key

_TRANSIENT_4XX = frozenset({408, 409, 429})
# Faults of the deployment, not of the request: another deployment may serve it.
_DEPLOYMENT_4XX = frozenset({401, 403, 404})

_STATUS_ERRORS = (openai.APIStatusError, anthropic.APIStatusError)
_VALIDATION_ERRORS = (openai.APIResponseValidationError, anthropic.APIResponseValidationError)
_TIMEOUT_ERRORS = (openai.APITimeoutError, anthropic.APITimeoutError)
_CONNECTION_ERRORS = (openai.APIConnectionError, anthropic.APIConnectionError)
_SDK_ERRORS = (openai.OpenAIError, anthropic.AnthropicError)
# The SDKs speak httpx2; user code and other connectors may still use httpx.
_RAW_STATUS_ERRORS = (httpx.HTTPStatusError, httpx2.HTTPStatusError)
_RAW_TRANSPORT_ERRORS = (httpx.TransportError, httpx2.TransportError)


def is_transient_status(status: int) -> bool:
    return status in _TRANSIENT_4XX or status >= 500


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The server's hint, in seconds: ``retry-after-ms`` (OpenAI, Anthropic), else
    ``retry-after`` as seconds or as an HTTP date (RFC 9110). None if absent or unreadable."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def provider_message(body: object, fallback: str) -> str:
    """The provider's own words: ``error.message`` (OpenAI and Anthropic shapes) or
    ``message``; else ``fallback``."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return fallback


def malformed(card: ModelCard, endpoint: str, detail: str) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"{card.key}: malformed response from {mask_url(endpoint)}: {detail}"
    )


class WireStatus(Exception):
    """An HTTP error status from a provider called without its SDK (the status, the body as
    JSON or text, the headers); ``sdk_errors`` translates it as the SDK's status errors."""

    def __init__(self, status: int, body: object, headers: Mapping[str, str]) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.body, self.headers = status, body, headers


def status_error(
    card: ModelCard,
    where: str,
    status: int,
    message: str,
    headers: Mapping[str, str],
    key_hint: str,
) -> ProviderUnavailable | ProviderRejected:
    """The aiosys error for a provider's HTTP error ``status`` (module docstring)."""
    if status == 429:
        return ProviderUnavailable(
            f"{where} is rate limited (HTTP 429): {message}",
            retry_after=retry_after_seconds(headers),
        )
    if is_transient_status(status):
        return ProviderUnavailable(
            f"{where} failed (HTTP {status}): {message}",
            retry_after=retry_after_seconds(headers),
        )
    hint = f" ({key_hint})" if key_hint and status in (401, 403) else ""
    if status in _DEPLOYMENT_4XX:
        return DeploymentUnusable(
            f"{where} refused to serve (HTTP {status}): {message}{hint}", status=status
        )
    return ProviderRejected(f"{where} rejected the request (HTTP {status}): {message}{hint}")


@contextmanager
def sdk_errors(card: ModelCard, endpoint: str, key_hint: str = "") -> Iterator[None]:
    """Run an SDK call; re-raise its failures as ``ProviderUnavailable`` /
    ``ProviderRejected``, secrets masked. ``key_hint`` is added to 401/403 messages (e.g.
    which environment variable should hold the key)."""
    try:
        with _translated(card, endpoint, key_hint):
            yield
    except (ProviderUnavailable, ProviderRejected) as err:
        key, _ = api_key(card)
        err.args = tuple(
            redact(a, key, url_password(endpoint)) if isinstance(a, str) else a for a in err.args
        )
        # The SDK's exception quotes the server's body and holds the request (its
        # Authorization header): it is not kept as the cause, which a run's error record
        # and a log's traceback would show. The message above says what it said.
        err.__cause__ = err.__context__ = None
        err.__suppress_context__ = True
        raise


@contextmanager
def _translated(card: ModelCard, endpoint: str, key_hint: str) -> Iterator[None]:
    where = f"{card.key} at {endpoint}"
    try:
        yield
    except _VALIDATION_ERRORS as exc:
        raise malformed(card, endpoint, exc.message) from exc
    except _STATUS_ERRORS as exc:
        message = provider_message(exc.body, exc.message)
        raise status_error(
            card, where, exc.status_code, message, exc.response.headers, key_hint
        ) from exc
    except WireStatus as exc:  # the direct path's (``OpenAIProvider``'s plain chat)
        message = provider_message(exc.body, f"Error code: {exc.status}")
        raise status_error(card, where, exc.status, message, exc.headers, key_hint) from exc
    except aiohttp.ServerTimeoutError as exc:  # the direct path's connect or read timeout
        raise ProviderUnavailable(f"{where} timed out after {card.timeout:g}s") from exc
    except aiohttp.ClientConnectionError as exc:  # refused, reset, hung up
        raise ProviderUnavailable(f"{where} is unreachable: {type(exc).__name__}: {exc}") from exc
    except aiohttp.ClientError as exc:  # a broken body, a bad URL
        raise ProviderUnavailable(f"{where} failed: {type(exc).__name__}: {exc}") from exc
    except _TIMEOUT_ERRORS as exc:
        lost = _connection_lost(exc)
        if lost is not None:
            detail = f"{type(lost).__name__}: {lost}"
            raise ProviderUnavailable(f"{where} is unreachable: {detail}") from exc
        raise ProviderUnavailable(f"{where} timed out after {card.timeout:g}s") from exc
    except _CONNECTION_ERRORS as exc:
        cause = exc.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else exc.message
        raise ProviderUnavailable(f"{where} is unreachable: {detail}") from exc
    except json.JSONDecodeError as exc:
        raise malformed(card, endpoint, f"body is not JSON ({exc})") from exc
    except ValueError as exc:  # the SDKs' response parsers (e.g. "No embedding data received")
        raise malformed(card, endpoint, str(exc)) from exc
    except _SDK_ERRORS as exc:
        raise ProviderUnavailable(f"{where} failed: {type(exc).__name__}: {exc}") from exc


def _connection_lost(exc: BaseException) -> BaseException | None:
    """The aiohttp connection error under an SDK timeout that is none: the SDK's aiohttp
    transport (``openai.DefaultAioHttpClient``) reports every ``ClientConnectionError``
    (a refused connection, a server that hung up) as httpx's ``ConnectTimeout``, which the
    SDK raises as ``APITimeoutError``. None for a real timeout."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, TimeoutError):
            return cause
        cause = cause.__cause__
    return None


def classify(exc: BaseException) -> bool | None:
    """The kernel's verdict on SDK and raw HTTP errors: True transient, False permanent,
    None when the error is none of these."""
    if isinstance(exc, _STATUS_ERRORS):
        return is_transient_status(exc.status_code)
    if isinstance(exc, _RAW_STATUS_ERRORS):
        return is_transient_status(exc.response.status_code)
    if isinstance(exc, _VALIDATION_ERRORS + _CONNECTION_ERRORS + _RAW_TRANSPORT_ERRORS):
        return True
    return None


_installed = False


def install_classifier() -> None:
    """Register ``classify`` with the kernel's retry policy (once per process)."""
    global _installed
    if not _installed:
        add_classifier(classify)
        _installed = True
