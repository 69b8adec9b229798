"""The OpenTelemetry GenAI client metrics of model calls, with the OTel metrics API:
``gen_ai.client.operation.duration`` (histogram, seconds) and ``gen_ai.client.token.usage``
(histogram, ``{token}``, one measurement per token type), with the attributes and bucket
boundaries the GenAI semantic conventions give.

Recorded by the ``trace`` interceptor when a model call (an effect of kind ``model``, in a
run or direct) ends, never for a replayed one (its record is read back: it made no call).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import Meter

# The conventions' advisory bucket boundaries.
DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(14))  # 0.01, 0.02, 0.04, ... 81.92 s
TOKEN_BUCKETS = tuple(4.0**i for i in range(14))  # 1, 4, 16, ... 67108864 tokens
# The span attributes both metrics carry (when the span has them).
KEYS = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
)


class GenAIMetrics:
    """The two histograms, made on ``meter``."""

    def __init__(self, meter: Meter) -> None:
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )

    def record(
        self, span_attributes: dict[str, Any], seconds: float, error_type: str | None
    ) -> None:
        """One model call that took ``seconds`` (from the effect's start to its end: routing,
        attempts, fallbacks); ``error_type`` the class name of the error it ended with.
        Tokens are recorded for a call that used some (not a cache hit): input and output,
        from ``gen_ai.usage.*``."""
        attrs = {k: span_attributes[k] for k in KEYS if k in span_attributes}
        if error_type is not None:
            self.duration.record(seconds, {**attrs, "error.type": error_type})
            return
        self.duration.record(seconds, attrs)
        if span_attributes.get("aiosys.cache_hit"):
            return
        for kind in ("input", "output"):
            used = span_attributes.get(f"gen_ai.usage.{kind}_tokens")
            if used is not None:
                self.tokens.record(int(used), {**attrs, "gen_ai.token.type": kind})
