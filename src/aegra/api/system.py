"""System endpoints: /, /ok, /info, /health, /ready, /live, /metrics, /openapi.json, /docs.

``meta_bp`` holds the ones ``http.disable_meta`` removes, as on the platform (/, /info,
/metrics, /openapi.json, /docs); the probes in ``bp`` always answer, so an operator can
tell the server is up.
"""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint, Response, current_app

from aegra.api import openapi
from aegra.api.deps import deps
from aegra.api.errors import error_body
from aegra.api.wire import json
from aegra.domain.ports import Probe

bp = Blueprint("system", __name__)
meta_bp = Blueprint("meta", __name__)


@meta_bp.get("/")
async def root() -> Response:
    """Server banner."""
    return json({"message": "Aegra", "version": deps().version, "status": "running"})


@bp.get("/ok")
async def ok() -> Response:
    """Cheap liveness probe (LangGraph Platform compatible)."""
    return json({"ok": True})


@bp.get("/live")
async def live() -> Response:
    """Liveness: the process answers; no dependency is checked."""
    return json({"status": "alive"})


@meta_bp.get("/info")
async def info() -> Response:
    """Version and which features are on (Studio reads ``flags``)."""
    d = deps()
    cfg = d.config
    return json({
        "name": "Aegra",
        "version": d.version,
        "description": "Self-hosted LangGraph agent server on Trio",
        "status": "running",
        "flags": {"assistants": True, "crons": cfg.cron.enabled, "langsmith": False},
        "features": {
            "redis_broker": cfg.redis.enabled,
            "metrics": cfg.http.enable_metrics,
            "crons": cfg.cron.enabled,
            "store_semantic_search": bool(d.features.get("store_semantic_search", False)),
            "auth": cfg.auth.type,
        },
        "graphs": sorted(d.project.graphs),
    })


async def _check(name: str, probe: Probe | None, timeout_s: float = 3.0
                 ) -> tuple[str, str | None]:
    """``(name, None)`` when the probe answers, else ``(name, why)``. Any failure of a
    probe is its answer: /health reports it, never fails with it."""
    if probe is None:
        return name, "not configured"
    try:
        with trio.fail_after(timeout_s):
            await probe.ping()
        return name, None
    except Exception as exc:  # trio.TooSlowError included
        return name, str(exc) or type(exc).__name__


def _component(err: str | None) -> str:
    return "healthy" if err is None else "unhealthy"


@bp.get("/health")
async def health() -> Response:
    """The runbook's health: ``{"status", "version", "components", "details"}``.

    ``components`` holds plain strings (``healthy``/``degraded``/``unhealthy``):
    ``database`` (PostgreSQL answers), ``workers`` (this instance's actors, see
    ``Board.workers_health``: unhealthy while draining or once an actor failed, degraded
    while one restarts, waits out a store outage or has not started) and ``redis`` only
    when the broker is enabled. Everything else (errors, the checkpointer, each actor,
    running runs) is under ``details``. Status: 503 ``unhealthy`` without the database;
    200 ``degraded`` when anything else is not healthy (without Redis, runs go on by
    polling PostgreSQL); 200 ``healthy`` otherwise.
    """
    d = deps()
    checks = [("database", d.pg), ("checkpointer", d.langgraph)]
    if d.config.redis.enabled:
        checks.append(("redis", d.redis))
    errors: dict[str, str | None] = {}

    async def one(name: str, probe: Probe | None) -> None:
        key, err = await _check(name, probe)
        errors[key] = err

    async with trio.open_nursery() as nursery:
        for name, probe in checks:
            nursery.start_soon(one, name, probe)
    components = {"database": _component(errors["database"]),
                  "workers": d.board.workers_health()}
    if "redis" in errors:
        components["redis"] = "degraded" if errors["redis"] else "healthy"
    details: dict[str, Any] = {name: {"error": err} for name, err in errors.items()}
    details["checkpointer"]["status"] = _component(errors["checkpointer"])  # not a component
    details["supervisor"] = ("draining" if d.board.draining
                             else "ready" if d.board.ready else "starting")
    details["actors"] = d.board.snapshot()
    details["running_runs"] = len(d.registry)
    if errors["database"] is not None:
        status = "unhealthy"
    elif errors["checkpointer"] is not None or any(
            v != "healthy" for v in components.values()):
        status = "degraded"
    else:
        status = "healthy"
    body: dict[str, Any] = {"status": status, "version": d.version,
                            "components": components, "details": details}
    if status == "unhealthy":
        body.update(error_body(503, f"database unavailable: {errors['database']}"))
        return json(body, status=503)
    return json(body)


@bp.get("/ready")
async def ready() -> Response:
    """Readiness: 503 until every actor started, while draining, or without a database."""
    d = deps()
    if d.board.draining:
        return json({**error_body(503, "draining: this instance is shutting down"),
                     "status": "draining"}, status=503)
    if not d.board.ready:
        return json({**error_body(503, "starting: actors are not all started yet"),
                     "status": "starting"}, status=503)
    _, err = await _check("database", d.pg)
    if err is not None:
        return json({**error_body(503, f"database unavailable: {err}"), "status": "unready"},
                    status=503)
    return json({"status": "ready"})


@meta_bp.get("/metrics")
async def metrics() -> Response:
    """Prometheus text exposition."""
    d = deps()
    if not d.config.http.enable_metrics:
        return json(error_body(404, "metrics are disabled (ENABLE_PROMETHEUS_METRICS=false)"),
                    status=404)
    payload, content_type = await current_app.extensions["metrics"].render()
    return Response(payload, content_type=content_type)


@meta_bp.get("/openapi.json")
async def openapi_json() -> Response:
    """This API's OpenAPI document."""
    extra = current_app.extensions.get("openapi_extra_paths")
    d = deps()
    doc = openapi.build(current_app, "Aegra", d.version, extra)
    security = (d.project.auth or {}).get("openapi") if d.authenticator is not None else None
    if isinstance(security, dict):  # aegra.json auth.openapi: how clients authenticate
        schemes = security.get("securitySchemes") or {}
        doc.setdefault("components", {}).setdefault("securitySchemes", {}).update(schemes)
        if security.get("security") is not None:
            doc["security"] = security["security"]
    if d.project.http.mount_prefix:  # paths are relative to it, as on the platform
        doc["servers"] = [{"url": d.project.http.mount_prefix}]
    return json(doc)


@meta_bp.get("/docs")
async def docs() -> Response:
    """Interactive API documentation."""
    return Response(openapi.DOCS_HTML.format(title="Aegra"), content_type="text/html")
