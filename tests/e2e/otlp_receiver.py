"""A tiny OTLP/HTTP trace receiver for tests: decodes what exporters POST to /v1/traces.

Real protobuf decoding (``opentelemetry-proto``), real HTTP (a threaded stdlib server on
a free port). Spans are flattened to ``Span`` records; ``wait_for`` polls with a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

KIND = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclass
class Span:
    service: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    name: str
    kind: str
    attributes: dict[str, Any]
    status: int  # 0 unset, 1 ok, 2 error
    events: list[str]


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    return getattr(v, which) if which else None


@dataclass
class Receiver:
    url: str = ""
    spans: list[Span] = field(default_factory=list)
    posts: list[str] = field(default_factory=list)  # request paths, including odd ones
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, body: bytes) -> None:
        req = ExportTraceServiceRequest.FromString(body)
        found = []
        for rs in req.resource_spans:
            res = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    found.append(Span(
                        service=str(res.get("service.name")), trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(), parent_id=s.parent_span_id.hex(),
                        name=s.name, kind=KIND.get(s.kind, str(s.kind)),
                        attributes={a.key: _value(a.value) for a in s.attributes},
                        status=s.status.code, events=[e.name for e in s.events]))
        with self.lock:
            self.spans.extend(found)

    def snapshot(self) -> list[Span]:
        with self.lock:
            return list(self.spans)

    def wait_for(self, pick: Callable[[list[Span]], Any], what: str,
                 timeout: float = 15.0) -> Any:
        """Poll until ``pick(spans)`` is truthy; return it."""
        deadline = time.monotonic() + timeout
        while True:
            got = pick(self.snapshot())
            if got:
                return got
            if time.monotonic() > deadline:
                names = [(s.service, s.name, s.kind) for s in self.snapshot()]
                raise AssertionError(f"timed out waiting for {what}; got {names}")
            time.sleep(0.05)


@contextmanager
def otlp_receiver(port: int = 0) -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                receiver.posts.append(self.path)
            if self.path == "/v1/traces":
                receiver.add(body)
            out = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
