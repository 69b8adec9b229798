"""Why a routed call was not served, and the one error that says so.

The router notes, per candidate it could not use, why and of what kind:

- *transient*: it failed transiently (429, 5xx, a timeout, a rate-limit window) or its
  breaker is open; it may serve later, ``retry_after`` seconds from now if it said when
  (an open breaker: the rest of its cooldown);
- *invalid*: it answered, and the answer failed the task's parse or schema;
- *budget*: a hard budget refused it (a cheaper candidate may still fit);
- *permanent*: it refused to serve (``DeploymentUnusable``: 401, 403, 404) or was excluded
  (kind, classification, condition, cost cap).

When no candidate served, ``Failures.error`` decides the error: one transient reason makes
the whole call transient (``ProviderUnavailable`` with the smallest ``retry_after``; None
when a transient failure gave no hint, so the retry policy's backoff decides), so that the
kernel retries the model effect instead of ending the run ``dead``; otherwise
``InvalidModelOutput`` when every candidate tried answered badly, the ``BudgetExceeded``
when budgets refused every candidate tried, else ``NoRouteAvailable`` (permanent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..errors import BudgetExceeded, InvalidModelOutput, NoRouteAvailable, ProviderUnavailable

Kind = Literal["transient", "invalid", "budget", "permanent", "excluded"]


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str  # as listed in the error: "failed: ProviderUnavailable: ...", "open breaker"
    kind: Kind
    retry_after: float | None = None  # transient: seconds until it may serve, if known
    budget: BudgetExceeded | None = None  # kind "budget": the refusal


@dataclass(slots=True)
class Failures:
    """The candidates that did not serve the call, by label, in the order they were met."""

    by_label: dict[str, Failure] = field(default_factory=dict)

    def add(self, label: str, failure: Failure) -> None:
        self.by_label[label] = failure

    def reason(self, label: str) -> str | None:
        found = self.by_label.get(label)
        return None if found is None else found.reason

    def error(self, what: str, listed: str) -> Exception:
        """The error of a call no candidate served; ``what`` names the call ("task 'x'"),
        ``listed`` every candidate and why it was not used."""
        failures = list(self.by_label.values())
        transient = [f for f in failures if f.kind == "transient"]
        if transient:
            hints = [f.retry_after for f in transient]
            retry_after = None if None in hints else min(h for h in hints if h is not None)
            when = "" if retry_after is None else f" (retry after {retry_after:.3g}s)"
            return ProviderUnavailable(
                f"no model can serve {what} now{when}: {listed}", retry_after=retry_after
            )
        tried = [f for f in failures if f.kind != "excluded"]
        if tried and all(f.kind == "invalid" for f in tried):
            return InvalidModelOutput(f"no candidate of {what} gave a valid output: {listed}")
        if tried and all(f.budget is not None for f in tried):
            first = tried[0].budget
            assert first is not None
            return first
        return NoRouteAvailable(f"no model could serve {what}: {listed}")
