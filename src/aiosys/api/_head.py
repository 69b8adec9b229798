"""HEAD is GET without its body (RFC 9110, 9.3.2: every general-purpose server supports
both): ``HeadAsGet`` serves a HEAD request as the GET of its path, with the GET's status
and headers (``Content-Length`` too) and no body. FastAPI's routes take only the methods
they declare, so ``curl -I /healthz`` (or a load balancer's HEAD probe) was a 405 on every
route but ``/openapi.json``; declaring HEAD on each route would list a HEAD operation per
path in the OpenAPI document instead."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI: a HEAD request goes on as a GET whose response body is not sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


__all__ = ["HeadAsGet"]
