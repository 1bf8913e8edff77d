"""The quart-trio application: middleware (request id, metrics, CORS), errors, blueprints."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import trio
from quart import Blueprint, Response, g, request
from quart_trio import QuartTrio

from aegra import logs
from aegra.api import admin, errors, system
from aegra.api import auth as auth_edge
from aegra.api.cors import CorsPolicy, is_preflight
from aegra.api.deps import Deps
from aegra.api.metrics import Metrics
from aegra.domain.headers import NEVER_LOGGED, HeaderRules

log = logs.get_logger("aegra.http")

SKIP_METRICS = {"/metrics", "/health", "/ready", "/live", "/ok"}
# Metric labels stay bounded whatever clients send: other methods count as OTHER.
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"})
# An echoed id ends up in logs and response headers: short and plain, or a fresh one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def request_id(header: str | None) -> str:
    """The client's X-Request-ID when short and plain, else a new one."""
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


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
    # http.logging_headers: the request and response headers a request's log line shows
    # (none unless configured; credentials and cookies never).
    logged = d.project.http.logging_headers
    log_headers = HeaderRules(*logged.rules()) if logged is not None else None
    cors = CorsPolicy.build(d.project.http.cors, d.config.http.cors_allow_origins)
    if cors.credentials_unusable:
        log.warning("cors.credentials_ignored", hint="http.cors.allow_credentials needs "
                    "named allow_origins or allow_origin_regex; '*' never gets credentials")

    @app.before_request
    async def _begin() -> Response | None:
        g.started = trio.current_time()
        rid = request_id(request.headers.get("X-Request-ID"))
        g.request_id = rid
        logs.request_id.set(rid)
        if is_preflight(request):  # answered here, before auth: preflights carry no credentials
            status, headers, text = cors.preflight(
                request.headers["Origin"], request.headers["Access-Control-Request-Method"],
                request.headers.get("Access-Control-Request-Headers"))
            g.preflight = True
            return Response(text, status=status, headers=headers, content_type="text/plain")
        return None

    @app.after_request
    async def _finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = getattr(g, "request_id", "")
        if not g.get("preflight"):
            response.headers.update(cors.simple(request.headers.get("Origin")))
        if cors.varies:
            response.vary.add("Origin")
        rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        if rule not in SKIP_METRICS:
            elapsed = trio.current_time() - getattr(g, "started", trio.current_time())
            method = request.method if request.method in METHODS else "OTHER"
            metrics.requests.labels(method, rule, str(response.status_code)).inc()
            metrics.latency.labels(method, rule).observe(elapsed)
            if log_requests:
                extra: dict[str, Any] = {} if log_headers is None else {
                    "req_header": log_headers.select(request.headers.items(), NEVER_LOGGED),
                    "res_header": log_headers.select(response.headers.items(), NEVER_LOGGED)}
                log.info("http.request", method=request.method,
                         path=request.root_path + request.path, status=response.status_code,
                         ms=round(elapsed * 1000, 2), **extra)
            elif log.isEnabledFor(logging.DEBUG):  # LOG_LEVEL / PUT /admin/log-level
                log.debug("http.request", method=request.method,
                          path=request.root_path + request.path, status=response.status_code,
                          ms=round(elapsed * 1000, 2))
        return response

    auth_edge.install(app, d.authenticator)  # after _begin: failures carry a request id
    errors.install(app)
    app.register_blueprint(system.bp)
    app.register_blueprint(admin.bp)  # 404 unless AEGRA_ADMIN_TOKEN is set
    for bp in _feature_blueprints(d):
        app.register_blueprint(bp)
    return app


def _feature_blueprints(d: Deps) -> list[Blueprint]:
    """Blueprints of the resource issues (#3 onwards) register here. A group the project
    file turns off (``http.disable_*``) is not registered: its paths are 404, as on the
    platform (crons and the run join streams go with runs, the thread stream with
    threads)."""
    from aegra.api import assistants, crons, runs, store, thread_stream, threads

    off = d.project.http
    out: list[Blueprint] = []
    if not off.disable_meta:
        out.append(system.meta_bp)
    if not off.disable_assistants:
        out.append(assistants.bp)
    if not off.disable_store:
        out.append(store.bp)
    if not off.disable_threads:
        out += [threads.bp, thread_stream.bp]
    if not off.disable_runs:
        from aegra.api import webhooks  # the run's webhook delivery log (issue 13)

        out += [runs.bp, crons.bp, webhooks.bp]
    if not off.disable_runs and not off.disable_event_streaming:
        # v2 thread streaming creates runs (run.start), so disable_runs turns it off too.
        from aegra.api import thread_events, thread_events_ws

        out += [thread_events.bp, thread_events_ws.bp]
    if not off.disable_mcp:
        from aegra.api import mcp

        out.append(mcp.bp)
    if not off.disable_a2a:
        from aegra.api import a2a

        out.append(a2a.bp)
    if not off.disable_ui:
        from aegra.api import ui

        out.append(ui.bp)
    return out
