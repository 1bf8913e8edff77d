"""Auth is loaded at startup and fails closed; custom routes are authenticated only when
``http.enable_custom_route_auth`` is true."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.e2e.auth_support import APPS, AUTH_PATH, auth_project
from tests.e2e.conftest import base_env, write_project

pytestmark = pytest.mark.e2e
BROKEN = APPS / "broken_auth"


@pytest.mark.parametrize(("path", "says"), [
    (f"{BROKEN / 'missing.py'}:auth", "not found"),
    (f"{BROKEN / 'import_error.py'}:auth", "no_such_module_for_aegra_tests"),
    (f"{BROKEN / 'not_auth.py'}:auth", "expected a langgraph_sdk.Auth instance"),
    (f"{BROKEN / 'not_auth.py'}:nothing", "has no attribute"),
    (f"{BROKEN / 'no_authenticate.py'}:auth", "no @auth.authenticate"),
    (f"{BROKEN / 'bad_param.py'}:auth", "tenant"),
])
def test_a_broken_auth_module_stops_startup(tmp_path, path, says) -> None:
    write_project(tmp_path, auth={"path": path})
    env = base_env("postgresql://nobody@127.0.0.1:1/none", AUTH_TYPE="custom")
    done = subprocess.run([sys.executable, "-m", "aegra", "serve", "--port", "1"],
                          cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert done.returncode != 0
    last = done.stderr.decode().strip().splitlines()[-1]
    assert "auth.path" in last and says in last, done.stderr.decode()[-2000:]


def test_custom_auth_without_a_path_stops_startup(tmp_path) -> None:
    write_project(tmp_path)
    env = base_env("postgresql://nobody@127.0.0.1:1/none", AUTH_TYPE="custom")
    done = subprocess.run([sys.executable, "-m", "aegra", "serve", "--port", "1"],
                          cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert done.returncode != 0
    assert "auth.path" in done.stderr.decode().strip().splitlines()[-1]


@pytest.mark.parametrize("enabled", [True, False])
def test_custom_route_auth_both_ways(tmp_path, start_server, database_url, enabled) -> None:
    auth_project(tmp_path, http={"app": f"{APPS / 'custom_routes_auth.py'}:app",
                                 "enable_custom_route_auth": enabled})
    server = start_server(base_env(database_url, AUTH_TYPE="custom"))
    with httpx.Client(base_url=server.url) as http:
        anonymous = http.get("/custom/whoami")
        alice = http.get("/custom/whoami", headers={"Authorization": "Bearer alice-token"})
        assert http.post("/threads", json={}).status_code == 401  # our routes: always
    if enabled:
        assert anonymous.status_code == 401
        assert alice.json() == {"identity": "alice", "scopes": ["read", "write"]}
    else:
        assert anonymous.status_code == 200 and anonymous.json()["identity"] is None
        assert alice.json()["identity"] is None


def test_auth_path_alone_turns_auth_on(tmp_path, start_server, database_url) -> None:
    """As on the platform, aegra.json's auth.path is enough (AUTH_TYPE unset)."""
    write_project(tmp_path, auth={"path": AUTH_PATH, "openapi": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "security": [{"bearer": []}]}})
    server = start_server(base_env(database_url), args=["--host", "0.0.0.0"])
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/threads", json={}).status_code == 401
        doc = http.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["security"] == [{"bearer": []}]
    # Listening on every interface with auth on: no "unauthenticated" warning.
    assert "server.unauthenticated" not in server.logs()
    assert "auth.loaded" in server.logs()


def test_authenticate_sees_the_request_and_the_handler_still_reads_the_body(
        tmp_path, start_server, database_url) -> None:
    write_project(tmp_path, auth={"path": f"{APPS / 'auth_body.py'}:auth"})
    server = start_server(base_env(database_url, AUTH_TYPE="custom"))
    me = {"x-user": "erin"}
    with httpx.Client(base_url=server.url, headers=me) as http:
        made = http.post("/threads", json={"metadata": {"k": 1}})
        assert made.status_code == 200 and made.json()["metadata"] == {"k": 1}
        refused = http.post("/threads", json={"metadata": {"forbidden": True}})
        assert (refused.status_code, refused.json()["detail"]) == (403, "the body says no")
        tid = made.json()["thread_id"]
        assert http.get(f"/threads/{tid}").status_code == 200
        assert http.get(f"/threads/{tid}", params={"deny": "1"}).status_code == 403
        blocked = http.get("/threads/00000000-0000-0000-0000-000000000001")
        assert (blocked.status_code, blocked.json()["detail"]) == (403, "the path says no")
    assert httpx.get(f"{server.url}/threads/{tid}").status_code == 401
    count = httpx.post(f"{server.url}/threads/count", json={}, headers=me).json()
    assert count == 1  # the refused create wrote nothing


@pytest.mark.parametrize("disabled", [False, True])
def test_studio_requests_pass_only_under_aegra_dev(tmp_path, start_server, database_url,
                                                   disabled) -> None:
    """``x-auth-scheme: langsmith`` is Studio's under ``aegra dev`` (as under ``langgraph
    dev``) unless ``disable_studio_auth``; ``aegra serve`` ignores it (test_auth_edge)."""
    write_project(tmp_path, auth={"path": AUTH_PATH, "disable_studio_auth": disabled})
    server = start_server(base_env(database_url, AUTH_TYPE="custom", AEGRA_DEV_MODE="1"))
    studio = {"x-auth-scheme": "langsmith"}
    made = httpx.post(f"{server.url}/threads", json={}, headers=studio)
    if disabled:
        assert made.status_code == 401
    else:
        assert made.status_code == 200  # the owner handler still ran, as Studio's user
        assert made.json()["metadata"]["owner"] == "langgraph-studio-user"
