"""One SERVER span per HTTP request, continuing the client's W3C ``traceparent``.

Installed on the Quart app by the root only when tracing is on. The span starts before
any other ``before_request`` hook (an auth refusal still gets its span), is named after
the route template (``POST /threads/{thread_id}/runs``: ids never make span names), and
ends when the response is ready (``after_request``) or, for a request that failed
before one was made, at teardown. Its context goes into ``tracecontext.carrier`` so the
runs this request creates carry it to whichever worker executes them.
"""

from __future__ import annotations

import re

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from quart import Response, g, request
from quart_trio import QuartTrio

from aegra import tracecontext

W3C = TraceContextTextMapPropagator()
# Span names stay bounded whatever clients send (semantic conventions: _OTHER).
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"})
_PARAM = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")  # <uuid:thread_id> -> {thread_id}


def route_template(rule: str) -> str:
    return _PARAM.sub(r"{\1}", rule)


def install(app: QuartTrio, tracer: Tracer) -> None:
    async def _start_span() -> None:
        rule = request.url_rule.rule if request.url_rule is not None else None
        route = request.root_path + route_template(rule) if rule is not None else None
        method = request.method if request.method in METHODS else "_OTHER"
        attributes: dict[str, str] = {
            "http.request.method": method, "url.path": request.root_path + request.path,
            "url.scheme": request.scheme}
        if route is not None:
            attributes["http.route"] = route
        if request.server is not None:
            attributes["server.address"] = str(request.server[0])
        if (agent := request.headers.get("User-Agent")) is not None:
            attributes["user_agent.original"] = agent
        if request.remote_addr:
            attributes["client.address"] = request.remote_addr
        span = tracer.start_span(f"{method} {route}" if route else method,
                                 context=W3C.extract(request.headers), kind=SpanKind.SERVER,
                                 attributes=attributes)
        g.otel_span = span
        carrier: dict[str, str] = {}
        W3C.inject(carrier, context=set_span_in_context(span))
        tracecontext.carrier.set(carrier)

    async def _end_span(response: Response) -> Response:
        span: Span | None = g.pop("otel_span", None)
        if span is not None:
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:  # a 4xx is the client's error, not the server's
                span.set_status(Status(StatusCode.ERROR))
            span.end()
        return response

    async def _end_failed(exc: BaseException | None) -> None:
        span: Span | None = g.pop("otel_span", None)
        if span is not None:
            if exc is not None:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.end()

    # First of the before hooks: an earlier hook that answers (a preflight, an auth
    # refusal) stops the later ones, and that request must have its span too.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_span)
    app.after_request(_end_span)
    app.teardown_request(_end_failed)
