"""One custom-auth server per test module, and SDK clients for alice, bob and the admin.

Starting a server costs seconds; the two-user tests share one per module and stay
independent by creating their own resources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from tests.e2e.conftest import GRAPHS, ServerProcess, write_project
from tests.e2e.runs_support import module_server

APPS = Path(__file__).parent / "apps"
AUTH_PATH = f"{APPS / 'auth_owner.py'}:auth"
TOKENS = {"alice": "alice-token", "bob": "bob-token", "admin": "admin-token"}


def auth_project(workdir: Path, **extra: Any) -> Path:
    graphs = {"agent": f"{GRAPHS / 'echo.py'}:graph", "hitl": f"{GRAPHS / 'hitl.py'}:graph",
              "whoami": f"{GRAPHS / 'whoami.py'}:graph"}
    return write_project(workdir, graphs, auth={"path": AUTH_PATH}, **extra)


def auth_module_server(pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory,
                       **env: str) -> Iterator[ServerProcess]:
    """One ``AUTH_TYPE=custom`` server with tests/e2e/apps/auth_owner.py for a module."""
    yield from module_server(pg_admin_dsn, tmp_path_factory,
                             project={"auth": {"path": AUTH_PATH}}, AUTH_TYPE="custom", **env)


@pytest.fixture(scope="module")
def auth_server(pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[ServerProcess]:
    """A server with ``AUTH_TYPE=custom`` and tests/e2e/apps/auth_owner.py."""
    yield from auth_module_server(pg_admin_dsn, tmp_path_factory)


@pytest.fixture
def as_user(auth_server: ServerProcess) -> Callable[[str], Any]:
    """``as_user("alice")``: a langgraph_sdk client sending alice's bearer token. Call it
    inside the asyncio scenario the test runs with ``asyncio.run`` (the SDK is asyncio;
    the suite runs under pytest-trio)."""

    def make(who: str) -> Any:
        token = TOKENS.get(who, who)
        return get_client(url=auth_server.url, headers={"Authorization": f"Bearer {token}"})

    return make
