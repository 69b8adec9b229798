"""The redact link: a request to a card that must not see personal data is redacted here.

The gate's ``redact`` interceptor (``aiosys.governance.redaction_gate``) gives each model
effect a ``Redactor`` (``DeploymentCall.redactor``); this link, right inside metering and
outside the cache, asks it whether requests to this attempt's card are redacted (the card's
``redaction``, ``external``, the task's rule, the data's classification) and, if so, sends
on a copy of the request with its texts redacted: the messages' contents (every role), a
summarize request's ``text``, an embed request's ``texts``. An ``ocr`` request's document
cannot be read here: it is sent as it is. Being outside the cache, the cache keys on (and
stores) the redacted request and answer, never the values. A streamed call's sink is given
the redactor's restorer for this attempt (none when its request was not redacted), so its
pieces reach the caller with the pseudonyms it may read restored.
"""

from __future__ import annotations

from dataclasses import replace

from ...governance.redaction import Redactor
from ..chain import DeploymentCall, NextLink
from ..types import Message, ModelRequest, ModelResponse


class RedactLink:
    async def __call__(self, call: DeploymentCall, next: NextLink) -> ModelResponse:
        redactor, card, sink = call.redactor, call.card, call.stream
        if not isinstance(redactor, Redactor) or not redactor.applies(
            card.redaction, card.external
        ):
            if sink is not None:
                sink.restorer = None
            return await next(call)
        request = await redact_request(redactor, call.request, card.key)
        if sink is not None:
            sink.restorer = await redactor.restorer()
        return await next(replace(call, request=request))


async def redact_request(
    redactor: Redactor, request: ModelRequest, deployment: str
) -> ModelRequest:
    """``request`` with its texts redacted by ``redactor`` (a ``Redactor``) for
    ``deployment``; the redactor keeps the first one it made (``Redactor.request``)."""
    texts = [m.content for m in request.messages]
    texts += list(request.texts)
    if request.text is not None:
        texts.append(request.text)
    if not texts:
        return request
    out = await redactor.redact(texts, deployment)
    n = len(request.messages)
    update: dict[str, object] = {
        "messages": [
            Message(role=m.role, content=t) for m, t in zip(request.messages, out, strict=False)
        ]
    }
    update["texts"] = out[n : n + len(request.texts)]
    if request.text is not None:
        update["text"] = out[-1]
    redacted = request.model_copy(update=update)
    if redactor.request is None:
        redactor.request = redacted
    return redacted
