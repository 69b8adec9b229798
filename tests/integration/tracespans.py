"""Helpers of the tracing tests: exported spans in the shape the store reads them back
(``app.trace``), to compare; a local OTLP/HTTP receiver decoding ``ExportTraceServiceRequest``;
the chat task ``ask`` the model-span tests route."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

from aiosys import App
from aiosys.models.contracts import Candidate, RoutingPlan
from aiosys.models.types import Message, ModelRequest


class Receiver:
    """What a local OTLP/HTTP endpoint received (``endpoint``: its base URL)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.requests: list[ExportTraceServiceRequest] = []
        self._lock = threading.Lock()

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def spans(self) -> list[Span]:
        """Every span received so far, in the order received."""
        with self._lock:
            requests = list(self.requests)
        return [
            s
            for req in requests
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        ]


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    """A threaded HTTP server on 127.0.0.1 that answers OTLP/HTTP trace exports (protobuf)
    and keeps the decoded requests."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces":
                receiver.add(ExportTraceServiceRequest.FromString(body))
            out = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def as_stored(span: ReadableSpan) -> dict[str, Any]:
    """An exported span in the shape ``app.trace`` gives (lists for sequences)."""

    def plain(attrs: Any) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dict(attrs or {}).items()}

    code = span.status.status_code
    return {
        "span_id": f"{span.context.span_id:016x}",
        "trace_id": f"{span.context.trace_id:032x}",
        "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
        "name": span.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": {StatusCode.OK: "ok", StatusCode.ERROR: "error"}.get(code, "open"),
        "error": span.status.description,
        "attributes": plain(span.attributes),
        "events": [
            {"name": e.name, "time_ns": e.timestamp, "attributes": plain(e.attributes)}
            for e in span.events
        ],
    }


def stored_shape(span: dict[str, Any]) -> dict[str, Any]:
    """A stored span without the fields an exported one does not have."""
    return {k: v for k, v in span.items() if k not in ("run_id", "seq", "kind")}


class AskIn(BaseModel):
    text: str


class AskOut(BaseModel):
    answer: str


def ask_task(app: App, plan: list[Candidate | str]) -> None:
    """Register the task ``ask``: ``{"text"}`` sent as one user message to the candidates of
    ``plan``, the answer's text as ``{"answer"}``."""
    app.models.task(
        "ask",
        input=AskIn,
        output=AskOut,
        build=lambda d: ModelRequest(messages=[Message(role="user", content=d.text)]),
        parse=lambda r: {"answer": r.output},
        plan=RoutingPlan(plan),
    )
