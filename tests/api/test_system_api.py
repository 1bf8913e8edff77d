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
    assert body["status"] == "unhealthy" and body["database"] == "unavailable"
    assert body["message"].startswith("database unavailable")


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
