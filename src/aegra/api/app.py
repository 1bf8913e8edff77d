"""The quart-trio application: middleware (request id, metrics, CORS), errors, blueprints."""

from __future__ import annotations

import uuid

import trio
from quart import Response, g, request
from quart_trio import QuartTrio

from aegra import logs
from aegra.api import errors, system
from aegra.api.deps import Deps
from aegra.api.metrics import Metrics

log = logs.get_logger("aegra.http")

EXPOSE = "Content-Location, Location, X-Request-ID, X-Pagination-Next, X-Pagination-Total"
SKIP_METRICS = {"/metrics", "/health", "/ready", "/live", "/ok"}


def create_app(d: Deps, metrics: Metrics | None = None) -> QuartTrio:
    app = QuartTrio("aegra")
    app.config["MAX_CONTENT_LENGTH"] = d.config.http.max_body_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.config["RESPONSE_TIMEOUT"] = None  # SSE and long polls run as long as the run does
    app.config["BODY_TIMEOUT"] = 300
    app.extensions["aegra"] = d
    app.extensions["metrics"] = metrics or Metrics()
    metrics = app.extensions["metrics"]
    log_requests = d.config.http.log_requests

    @app.before_request
    async def _begin() -> None:
        g.started = trio.current_time()
        rid = request.headers.get("X-Request-ID") or uuid.uuid4().hex
        g.request_id = rid
        logs.request_id.set(rid)

    @app.after_request
    async def _finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = getattr(g, "request_id", "")
        response.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin", "*")
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = EXPOSE
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = (
                "GET, POST, PUT, PATCH, DELETE, OPTIONS")
            response.headers["Access-Control-Allow-Headers"] = request.headers.get(
                "Access-Control-Request-Headers", "*")
            response.headers["Access-Control-Max-Age"] = "600"
        rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        if rule not in SKIP_METRICS:
            elapsed = trio.current_time() - getattr(g, "started", trio.current_time())
            metrics.requests.labels(request.method, rule, str(response.status_code)).inc()
            metrics.latency.labels(request.method, rule).observe(elapsed)
            if log_requests:
                log.info("http.request", method=request.method, path=request.path,
                         status=response.status_code, ms=round(elapsed * 1000, 2))
        return response

    errors.install(app)
    app.register_blueprint(system.bp)
    for bp in _feature_blueprints():
        app.register_blueprint(bp)
    return app


def _feature_blueprints() -> list[object]:
    """Blueprints of the resource issues (#3 onwards) register here."""
    from aegra.api import assistants, crons, runs, store, thread_stream, threads

    return [assistants.bp, store.bp, threads.bp, runs.bp, thread_stream.bp, crons.bp]
