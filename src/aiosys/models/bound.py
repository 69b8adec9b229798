"""``ctx.models``: model calls made inside a workflow, as recorded effects; and the request
a call's messages make.

Each call is a ``model`` effect through the gate: recorded once, replayed from the record
(the provider is not called again). When no candidate can serve now the effect fails with
``ProviderUnavailable`` and is retried under ``MODEL_RETRY`` (or the task's or the call's
``retry=``): see ``plane.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pydantic

from ..errors import InvalidInput
from ..governance.policy_entities import check_classification
from ..kernel import Context
from ..kernel.retry import Retry
from .contracts import TaskContract, describe
from .types import Message, ModelRequest, ModelResponse, check_params

if TYPE_CHECKING:
    from .plane import ModelPlane

Messages = str | list[Message] | list[dict[str, Any]] | ModelRequest

# How a workflow's model effect is retried when no candidate can serve it now; a task
# (``task(retry=...)``) or a call (``ctx.models.run(..., retry=...)``) may set its own.
MODEL_RETRY = Retry(attempts=5, backoff=1.0, cap=60.0)


class BoundModels:
    """``ctx.models``: model calls as recorded effects of the workflow."""

    def __init__(self, plane: ModelPlane, ctx: Context) -> None:
        self._plane = plane
        self._ctx = ctx

    async def run(
        self,
        task: str | TaskContract[Any, Any],
        input: dict[str, Any] | pydantic.BaseModel,
        *,
        classification: str | None = None,
        retry: Retry | None = None,
    ) -> Any:
        """Run a task; its output (a model of the task's output schema), recorded. ``retry``
        (else the task's, else ``MODEL_RETRY``) retries it when no model can serve now.
        ``InvalidInput`` before any effect for input the task refuses or an unknown
        ``classification`` (the data's label: public, internal, confidential, restricted,
        unclassified; None: unclassified)."""
        check_classification(classification)  # before any effect: bad input is the caller's
        contract = self._plane.contract(task)
        data = contract.validate_input(input)
        params = {"task": contract.name, "input": data, "classification": classification}
        policy = retry or contract.retry or MODEL_RETRY
        return await self._ctx.effect(
            "model", contract.name, params=params, returns=contract.output, retry=policy
        )

    async def call(
        self,
        model: str,
        messages: Messages,
        *,
        classification: str | None = None,
        retry: Retry | None = None,
        **params: Any,
    ) -> ModelResponse:
        """Call one model (a card or alias; else a task's plan, as ``app.models.call``); its
        response, recorded. ``retry`` (else ``MODEL_RETRY``) retries it when the model
        cannot serve now. ``InvalidInput`` before any effect for an unknown
        ``classification``."""
        check_classification(classification)
        request = make_request(messages, params)
        effect_params = self._plane._call_params(model, request, classification)
        response: ModelResponse = await self._ctx.effect(
            "model",
            f"call:{model}",
            params=effect_params,
            returns=ModelResponse,
            retry=retry or MODEL_RETRY,
        )
        return response


def make_request(messages: Messages, params: dict[str, Any]) -> ModelRequest:
    """A chat request from a string (one user message), messages or a request."""
    if isinstance(messages, ModelRequest):
        if params:
            merged = {**messages.params, **params}
            check_params(merged)  # as ModelRequest's validator would: a copy skips it
            return messages.model_copy(update={"params": merged})
        return messages
    if isinstance(messages, str):
        messages = [Message(role="user", content=messages)]
    try:
        return ModelRequest(kind="chat", messages=list(messages), params=params)  # type: ignore[arg-type]
    except pydantic.ValidationError as exc:
        raise InvalidInput(f"invalid model call: {describe(exc)}") from None
