"""Reading providers' error answers: retry-after hints, error messages, retry verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from aiosys.kernel.retry import is_transient
from aiosys.models.providers._http_errors import (
    classify,
    install_classifier,
    provider_message,
    retry_after_seconds,
)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after": "7", "retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "junk", "retry-after": "3"}, 3.0),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_and_milliseconds(headers, seconds):
    assert retry_after_seconds(headers) == seconds


def test_retry_after_reads_an_http_date():
    when = datetime.now(UTC) + timedelta(seconds=60)
    seconds = retry_after_seconds({"retry-after": format_datetime(when, usegmt=True)})
    assert seconds is not None and 58.5 <= seconds <= 60.5
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert retry_after_seconds({"retry-after": past}) == 0.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": {"message": "bad model", "type": "invalid_request_error"}}, "bad model"),
        ({"type": "error", "error": {"type": "api_error", "message": "boom"}}, "boom"),
        ({"message": "flat", "type": "invalid_request_error"}, "flat"),  # OpenAI SDK unwraps
        ("<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        ({"detail": "no message here"}, "fallback"),
        (None, "fallback"),
    ],
)
def test_provider_message_finds_the_providers_words(body, message):
    assert provider_message(body, "fallback") == message


def _status_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(status, request=request)
    return httpx.HTTPStatusError(f"HTTP {status}", request=request, response=response)


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (429, True),
        (408, True),
        (500, True),
        (503, True),
        (529, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (422, False),
    ],
)
def test_raw_http_errors_are_classified_by_status(status, transient):
    assert classify(_status_error(status)) is transient


def test_the_kernel_retry_policy_uses_the_classifier():
    install_classifier()
    install_classifier()  # once is enough; twice does no harm
    assert is_transient(_status_error(503)) is True
    assert is_transient(_status_error(401)) is False
    assert is_transient(httpx.ConnectError("refused")) is True
    assert classify(ValueError("not ours")) is None
