"""Task contracts: what a caller asks for (``summarize``), separate from which model answers.

A contract names the task, its input and output schemas (pydantic), how a validated input
becomes a ``ModelRequest`` (``build``) and how a response becomes output data (``parse``,
validated against ``output``), an SLO, a cost cap per call and a routing plan. Callers name
the task; the plan picks the model, so models are swapped without touching callers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import pydantic

from ..errors import ConfigError, InvalidInput
from ..kernel.retry import Retry
from .types import ModelRequest, ModelResponse

if TYPE_CHECKING:
    from ..governance.redaction import Redaction
    from .links.cache import CachePolicy

In = TypeVar("In", bound=pydantic.BaseModel)
Out = TypeVar("Out", bound=pydantic.BaseModel)

Strategy = Literal["ordered", "latency", "cost"]
STRATEGIES: tuple[Strategy, ...] = ("ordered", "latency", "cost")
DEFAULT_INTERNAL_ONLY = frozenset({"confidential", "restricted"})


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What a candidate's ``when`` condition (and the links) know about one call."""

    task: str | None
    request: ModelRequest
    input: pydantic.BaseModel | None = None
    classification: str | None = None
    tenant: str = "default"
    workflow: str | None = None
    run_id: str | None = None
    seq: int | None = None
    cache: CachePolicy | None = None
    held: list[dict[str, Any]] | None = None  # usage rows for the effect's record (chain.py)
    redactor: Any = None  # the effect's redaction (governance.redaction.Redactor), if any
    stream: Any = None  # a streamed call's sink (streaming.StreamSink), if any


@dataclass(frozen=True, slots=True)
class Candidate:
    """One model the plan may use.

    ``model`` is a card id or alias (resolved at each call, so moving an alias such as
    ``production`` reroutes traffic). ``weight`` puts the candidate in the canary split: among
    the candidates that set a weight, one leads with probability weight / sum of weights and
    the others stay behind it as fallbacks. ``when`` excludes the candidate for calls it
    returns False for. ``retries`` is how many more times a transient failure is retried on
    this candidate (``backoff`` seconds, doubling, or the provider's retry-after) before the
    router falls back to the next one. ``build`` and ``parse`` replace the task's own for
    this candidate, so a plan can mix kinds of model: a chat LLM first, an extractive
    summarizer (kind ``summarize``) as the fallback."""

    model: str
    weight: float | None = None
    when: Callable[[RouteContext], bool] | None = None
    retries: int = 1
    backoff: float = 0.2
    build: Callable[[Any], ModelRequest] | None = None
    parse: Callable[[ModelResponse], Any] | None = None

    def __post_init__(self) -> None:
        if self.weight is not None and self.weight < 0:
            raise ConfigError(f"candidate {self.model!r}: weight must be >= 0")
        if self.retries < 0 or self.backoff < 0:
            raise ConfigError(f"candidate {self.model!r}: retries and backoff must be >= 0")


@dataclass(frozen=True, slots=True)
class RoutingPlan:
    """Candidates and how to order them: ``ordered`` as listed, ``latency`` fastest observed
    first, ``cost`` cheapest estimate first. Data whose classification is in
    ``internal_only_for`` never goes to a card marked ``external``. ``shadow`` names a model
    that also receives each request after the answer, for comparison; its output never
    reaches the caller."""

    candidates: list[Candidate | str]
    strategy: Strategy = "ordered"
    internal_only_for: frozenset[str] | set[str] = DEFAULT_INTERNAL_ONLY
    shadow: str | None = None

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ConfigError("a routing plan needs at least one candidate")
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown routing strategy {self.strategy!r} (use one of {', '.join(STRATEGIES)})"
            )
        object.__setattr__(
            self,
            "candidates",
            [c if isinstance(c, Candidate) else Candidate(c) for c in self.candidates],
        )
        object.__setattr__(self, "internal_only_for", frozenset(self.internal_only_for))

    @property
    def choices(self) -> list[Candidate]:
        return [c for c in self.candidates if isinstance(c, Candidate)]


@dataclass(frozen=True, slots=True)
class TaskContract(Generic[In, Out]):
    """A task: schemas, translation to and from the model, SLO, cost cap, routing plan.

    ``cost_cap`` applies per call: a candidate whose estimated cost exceeds it is skipped.
    ``slo_p95_ms`` is the task's latency objective: the router moves deployments whose
    observed p95 breaks it behind the ones that keep it (see ``router.py``). ``retry`` is how
    a workflow's model effect of this task is retried when no candidate could serve it now
    (None: the model plane's ``MODEL_RETRY``). ``redaction`` is how personal data is kept
    from the models of its plan (``aiosys.governance.redaction.Redaction``; None: the app's
    default, ``[redaction]`` in aiosys.toml). ``version`` names this revision of the
    contract (schemas, prompt, plan): a model call's record keeps it beside the model's
    version (``task_version``), so lineage can tell which contract produced an output."""

    name: str
    input: type[In]
    output: type[Out]
    build: Callable[[In], ModelRequest]
    parse: Callable[[ModelResponse], Any]
    plan: RoutingPlan
    slo_p95_ms: float | None = None
    cost_cap: float | None = None
    cache: CachePolicy | None = None
    retry: Retry | None = None
    redaction: Redaction | None = None
    version: str = "1"

    def validate_input(self, data: Any) -> In:
        """The input as the contract's model, or ``InvalidInput`` naming the task and field."""
        if isinstance(data, self.input):
            return data
        if isinstance(data, pydantic.BaseModel):
            data = data.model_dump()
        if not isinstance(data, dict):
            raise InvalidInput(
                f"input of task {self.name!r} must be an object with "
                f"{', '.join(self.input.model_fields) or 'no fields'}, not {type(data).__name__}"
            )
        try:
            return self.input.model_validate(data)
        except pydantic.ValidationError as exc:
            raise InvalidInput(f"invalid input for task {self.name!r}: {describe(exc)}") from None

    def request(self, data: In, candidate: Candidate | None = None) -> ModelRequest:
        """The request for a validated input (by the candidate's own ``build``, if any)."""
        build = candidate.build if candidate is not None and candidate.build else self.build
        return build(data)

    def accept(self, response: ModelResponse, candidate: Candidate | None = None) -> Out:
        """The response as the contract's output; raises ``pydantic.ValidationError`` (or
        the error ``parse`` raised) when the model's answer does not fit."""
        parse = candidate.parse if candidate is not None and candidate.parse else self.parse
        data = parse(response)
        if isinstance(data, self.output):
            return data
        return self.output.model_validate(data)


def describe(exc: pydantic.ValidationError) -> str:
    """A validation error on one line: ``field: problem; other.field: problem``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
    )
