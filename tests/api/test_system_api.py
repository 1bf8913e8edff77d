"""The HTTP layer in-process (quart-trio test client), with no database behind it."""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint

from aegra import config
from aegra.api.app import create_app
from aegra.api.deps import Deps
from aegra.domain.errors import Conflict, Invalid
from aegra.project import empty
from aegra.runtime.board import Board
from aegra.runtime.registry import RunRegistry


def make_app(board: Board):
    deps = Deps(config=config.load(None, {}).config, project=empty(Path(".")), board=board,
                registry=RunRegistry(), version="test")
    app = create_app(deps)
    extra = Blueprint("extra", __name__)

    @extra.get("/boom")
    async def boom():
        raise RuntimeError("secret internals")

    @extra.get("/conflict")
    async def conflict():
        raise Conflict("thread t1 is busy")

    @extra.get("/invalid")
    async def invalid():
        raise Invalid("invalid field 'limit'", field="limit")

    app.register_blueprint(extra)
    return app


async def test_ready_is_503_while_starting_and_while_draining():
    board = Board()
    client = make_app(board).test_client()
    starting = await client.get("/ready")
    assert starting.status_code == 503
    assert (await starting.get_json())["status"] == "starting"
    board.ready = True
    board.draining = True
    draining = await client.get("/ready")
    assert draining.status_code == 503
    body = await draining.get_json()
    assert body["status"] == "draining" and "shutting down" in body["detail"]
    assert (await client.get("/live")).status_code == 200


async def test_health_is_503_without_a_database():
    client = make_app(Board(ready=True)).test_client()
    response = await client.get("/health")
    assert response.status_code == 503
    body = await response.get_json()
    assert body["status"] == "unhealthy" and body["version"] == "test"
    assert body["components"] == {"database": "unhealthy", "workers": "healthy"}
    assert body["details"]["database"]["error"] == "not configured"
    assert body["message"].startswith("database unavailable")


class _Probe:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    async def ping(self) -> None:
        if self.error is not None:
            raise self.error


async def test_health_is_the_runbooks_shape_and_degraded_without_redis():
    """Operations §1: plain-string components; details elsewhere; redis only when on."""
    board = Board(ready=True)
    board.actor("reaper").status = "running"
    app = make_app(board)
    d = app.extensions["aegra"]
    d.pg, d.langgraph = _Probe(), _Probe()
    client = app.test_client()
    healthy = await client.get("/health")
    assert healthy.status_code == 200
    body = await healthy.get_json()
    assert body["status"] == "healthy" and body["version"] == "test"
    assert body["components"] == {"database": "healthy", "workers": "healthy"}
    assert body["details"]["actors"]["reaper"]["status"] == "running"
    assert body["details"]["checkpointer"] == {"status": "healthy", "error": None}
    # A probe failing with anything (a driver error, not only a DomainError) is its answer.
    d.pg = _Probe(RuntimeError('database "t" does not exist'))
    down = await client.get("/health")
    assert down.status_code == 503 and (await down.get_json())["status"] == "unhealthy"
    d.pg = _Probe()
    d.config = config.load(None, {"REDIS_BROKER_ENABLED": "true"}).config
    d.redis = _Probe(OSError("connection refused"))
    degraded = await client.get("/health")
    assert degraded.status_code == 200
    body = await degraded.get_json()
    assert body["status"] == "degraded"
    assert body["components"] == {"database": "healthy", "workers": "healthy",
                                  "redis": "degraded"}
    assert body["details"]["redis"]["error"] == "connection refused"
    board.actor("reaper").status = "waiting"
    d.redis = _Probe()
    waiting = await (await client.get("/health")).get_json()
    assert waiting["status"] == "degraded" and waiting["components"]["workers"] == "degraded"


async def test_error_table_statuses_and_bodies():
    client = make_app(Board(ready=True)).test_client()
    boom = await client.get("/boom")
    assert boom.status_code == 500
    body = await boom.get_json()
    assert body == {"detail": "internal server error", "message": "internal server error",
                    "error": "internal_error"}
    conflict = await client.get("/conflict")
    assert conflict.status_code == 409
    assert (await conflict.get_json())["detail"] == "thread t1 is busy"
    invalid = await client.get("/invalid")
    assert invalid.status_code == 422
    assert (await invalid.get_json())["field"] == "limit"
    assert (await client.post("/ok")).status_code == 405
    assert boom.headers["X-Request-ID"]
    echoed = await client.get("/ok", headers={"X-Request-ID": "abc"})
    assert echoed.headers["X-Request-ID"] == "abc"
