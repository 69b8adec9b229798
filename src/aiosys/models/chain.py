"""The deployment chain: every call to one model deployment passes through these links.

The gate sees a model call as one effect (``ctx.models.run("summarize", ...)``): recorded,
replayed, authorized once. Inside it the router may try several deployments; each attempt
passes through this chain, the gate's shape one level down, so budgets, rate limits,
caching, the circuit breaker and metering are each one link (``aiosys/models/links/``),
written once for every provider:

    budget -> rate limit -> cache -> breaker -> provider -> (metering records on the way out)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .catalog import ModelCard
from .types import ModelRequest, ModelResponse

if TYPE_CHECKING:
    from .streaming import StreamSink


@dataclass(frozen=True, slots=True, eq=False)
class DeploymentCall:
    """One attempt at one deployment, as the links see it."""

    card: ModelCard
    request: ModelRequest
    tenant: str = "default"
    workflow: str | None = None
    run_id: str | None = None
    seq: int | None = None
    task: str | None = None
    classification: str | None = None  # data classification of the input (e.g. confidential)
    cache: Any = None  # the task's cache policy (links/cache.py), None: no cache
    meta: dict[str, Any] = field(default_factory=dict)  # links leave notes for later links
    # Inside a workflow: where metering puts the usage rows, which the model effect commits
    # with its record (None: the usage log writes them behind the call).
    held: list[dict[str, Any]] | None = None
    # The effect's redaction (aiosys.governance.redaction.Redactor; None: none): the redact
    # link asks it whether this card's request is redacted.
    redactor: Any = None
    # A streamed call (streaming.py): where a streaming provider puts the answer's pieces.
    stream: StreamSink | None = None


NextLink = Callable[[DeploymentCall], Awaitable[ModelResponse]]

# A link's wait for the caller's verdict on the answer (``True``: accepted); see ``judge``.
Verdict = Callable[[bool], Awaitable[None]]


def await_verdict(call: DeploymentCall, hook: Verdict) -> None:
    """Have ``hook`` told whether the caller accepted this call's answer (the cache stores
    only accepted answers, and drops a stored one the caller rejects)."""
    call.meta.setdefault("verdict", []).append(hook)


async def judge(call: DeploymentCall, accepted: bool) -> None:
    """The caller's verdict on the answer the chain gave for ``call``: ``True`` when it is
    the call's output, ``False`` when the task's ``parse`` or output schema rejected it.
    The router calls it once per answer; a hook that fails is the hook's problem (each
    link's hook logs and swallows its own store errors)."""
    for hook in call.meta.pop("verdict", ()):
        await hook(accepted)


class Link(Protocol):
    async def __call__(self, call: DeploymentCall, next: NextLink) -> ModelResponse: ...


def compose(links: list[Link], last: NextLink) -> NextLink:
    """The chain as one callable, built once."""
    chain = last
    for link in reversed(links):
        chain = _bind(link, chain)
    return chain


def _bind(link: Link, nxt: NextLink) -> NextLink:
    def call(c: DeploymentCall) -> Awaitable[ModelResponse]:
        return link(c, nxt)

    return call
