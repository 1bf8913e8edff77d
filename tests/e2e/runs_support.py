"""Shared helpers for the runs e2e modules: one server per module, polling, raw SSE.

Starting ``aegra serve`` costs a few seconds on the 2-core machine, so each runs module
starts one server (module scope) and its tests share it, each on its own threads.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import _with_db
from tests.e2e.conftest import GRAPHS, ServerProcess, base_env, write_project

ALL_GRAPHS = {
    "agent": "echo.py", "slow": "slow.py", "hitl": "hitl.py", "fail": "fail.py",
    "chat": "chat.py", "custom": "custom.py", "sub": "with_subgraph.py",
    "whoami": "whoami.py", "config": "configurable.py",
}

# Our streams end with an ``end`` event; the platform just closes. Flipped off only when
# a scenario is replayed against the ``langgraph dev`` oracle by hand, to check it there.
SENDS_END = True


def strip_end(parts: list[Any]) -> list[Any]:
    """Drop the final ``end`` event (required from us) so checks read like the platform's."""
    if SENDS_END or (parts and parts[-1].event == "end"):
        assert parts[-1].event == "end", [p.event for p in parts]
        return parts[:-1]
    return parts


def module_server(pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory, *,
                  project: dict[str, Any] | None = None, args: list[str] | None = None,
                  **env: str) -> Iterator[ServerProcess]:
    """A fresh database and one ``aegra serve`` for a whole test module; ``project``:
    more aegra.json keys (``graphs`` replaces ALL_GRAPHS), ``args``: more command-line
    arguments."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    workdir: Path = tmp_path_factory.mktemp("runs")
    extra = dict(project or {})
    graphs = extra.pop("graphs", None) or {
        g: f"{GRAPHS / f}:graph" for g, f in ALL_GRAPHS.items()}
    write_project(workdir, graphs, **extra)
    server = ServerProcess(workdir, base_env(_with_db(pg_admin_dsn, name), **env), args)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def show_logs_on_failure(request: pytest.FixtureRequest, server: ServerProcess
                         ) -> Iterator[None]:
    """Body of a per-test autouse fixture: a failing test shows the shared server's log."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        sys.stderr.write(f"\n--- server {server.port} log ---\n{server.logs()}\n")


async def until(check: Callable[[], Awaitable[Any]], within: float = 10.0,
                interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (HTTP state has no push here)."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {value!r})")
        await asyncio.sleep(interval)


async def run_status(client: Any, tid: str, rid: str) -> str:
    return (await client.runs.get(tid, rid))["status"]


async def wait_status(client: Any, tid: str, rid: str, statuses: set[str],
                      within: float = 10.0) -> str:
    async def check() -> str | None:
        status = await run_status(client, tid, rid)
        return status if status in statuses else None
    return await until(check, within)  # type: ignore[no-any-return]


def sse_events(text: str) -> list[tuple[str, Any, str | None]]:
    """Parse a whole SSE body into (event, data, id), skipping comments."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name = data = ident = None
        for line in block.split("\n"):
            if line.startswith(":") or not line:
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data = json.loads(value)
            elif key == "id":
                ident = value
        if name is not None:
            out.append((name, data, ident))
    return out
