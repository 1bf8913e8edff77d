"""aegra.json ``http.app``: a user FastAPI app served beside aegra's routes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from langgraph_sdk import get_client

from tests.e2e.conftest import base_env, write_project

APPS = Path(__file__).parent / "apps"


def test_user_app_beside_our_routes(start_server, database_url, tmp_path):
    # The "module:attr" form, importable through the project's dependencies.
    write_project(tmp_path, http={"app": "custom_routes:app"}, dependencies=[str(APPS)])
    server = start_server(base_env(database_url))
    c = httpx.Client(base_url=server.url)

    hello = c.get("/custom/hello", params={"name": "trio"})
    assert hello.status_code == 200
    assert hello.json() == {"hello": "trio", "started": 1}  # its lifespan ran once
    assert c.post("/custom/echo", json={"text": "ab", "times": 2}).json() == {"echo": "abab"}
    invalid = c.post("/custom/echo", json={"times": 2})
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["body", "text"]
    assert c.get("/custom/sync").json() == {"sync": True}
    assert c.get("/custom/nothing-here").json() == {"detail": "Not Found"}  # FastAPI's 404

    # Ours win where both match; a method we lack on one of our paths is the user's.
    assert c.get("/ok").json() == {"ok": True}
    assert c.get("/info").json()["name"] == "Aegra"
    assert c.post("/info").json() == {"user": "post-info"}
    assert c.get("/store/items", params={"namespace": "a"}).status_code == 422

    async def sdk() -> None:
        store = get_client(url=server.url).store
        await store.put_item(["custom"], "k", {"v": 1})
        assert (await store.get_item(["custom"], "k"))["value"] == {"v": 1}

    asyncio.run(sdk())

    spec = c.get("/openapi.json").json()
    assert "get" in spec["paths"]["/custom/hello"] and "post" in spec["paths"]["/custom/echo"]
    assert "/store/items" in spec["paths"] and "/health" in spec["paths"]
    assert spec["paths"]["/ok"]["get"]["operationId"].startswith("system")  # ours kept
    assert "Echo" in spec["components"]["schemas"]  # the user's $refs resolve
    assert c.get("/health").json()["status"] == "healthy"


def _failed_start(start_server, database_url, workdir: Path, value: str) -> str:
    write_project(workdir, http={"app": value})
    server = start_server(base_env(database_url), wait_ready=False, workdir=workdir)
    assert server.wait(60) != 0
    return server.logs()


def test_broken_user_app_stops_startup(start_server, database_url, tmp_path):
    # One process per case (~2-6 s each on a busy machine), so only distinct code paths:
    # a missing file, a module raising at import, a missing attribute.
    cases = {
        "./nowhere.py:app": "not found",
        f"{APPS / 'broken_import.py'}:app": "definitely_missing_dependency",
        f"{APPS / 'custom_routes.py'}:missing": "no attribute 'missing'",
    }
    for i, (value, error) in enumerate(cases.items()):
        workdir = tmp_path / f"case{i}"
        workdir.mkdir()
        logs = _failed_start(start_server, database_url, workdir, value)
        lines = [line for line in logs.splitlines() if line.startswith("aegra: ")]
        assert len(lines) == 1, logs
        assert "http.app" in lines[0] and value in lines[0] and error in lines[0], lines[0]
        assert "Traceback" not in logs

    # An app that imports but fails its own startup stops the server too.
    workdir = tmp_path / "lifespan"
    workdir.mkdir()
    logs = _failed_start(start_server, database_url, workdir,
                         f"{APPS / 'custom_routes.py'}:failing_app")
    assert "user startup exploded" in logs
