"""End-to-end ring: real ``aegra serve`` processes on free ports, driven over HTTP/SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

GRAPHS = Path(__file__).parent / "graphs"


class ServerProcess:
    """One ``aegra serve`` child process. Logs go to a file shown when a test fails."""

    def __init__(self, workdir: Path, env: dict[str, str], args: list[str] | None = None,
                 port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.env = env
        self.args = args or []
        self.log_path = workdir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.terminated = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True, timeout: float = 60.0) -> ServerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115  closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aegra", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), *self.args],
            cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        try:
            return self.log_path.read_text()[-20000:]
        except FileNotFoundError:
            return ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def terminate(self) -> None:
        """SIGTERM, once, without waiting: ``stop`` then only waits for the exit."""
        if self.proc is None or self.proc.poll() is not None or self.terminated:
            return
        self.terminated = True
        self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if not self.terminated:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def base_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AEGRA_", "POSTGRES_", "REDIS_", "WORKER_", "LANGGRAPH_"))}
    env.update({
        "DATABASE_URL": database_url,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "WORKER_DRAIN_TIMEOUT": "5",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def write_project(workdir: Path, graphs: dict[str, str] | None = None,
                  **extra: Any) -> Path:
    """aegra.json in ``workdir`` pointing at test graphs (absolute paths)."""
    doc: dict[str, Any] = {"graphs": graphs if graphs is not None else {
        "agent": f"{GRAPHS / 'echo.py'}:graph",
    }}
    doc.update(extra)
    path = workdir / "aegra.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def database_url(make_database: Callable[..., str], migrated_template: str) -> str:
    """A database already at head, so a server's startup migration check finds nothing to
    do (migrating from empty costs ~0.5 s per start). Tests about migrating, or those
    that need the database's tables to be their own, ask for ``make_database()`` instead:
    test_lifecycle.py, test_doctor.py, test_backup.py, test_store.py."""
    return make_database(template=migrated_template)


@pytest.fixture
def start_server(tmp_path: Path, request: pytest.FixtureRequest, make_database: Any
                 ) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: ``start_server(env, args=[...], wait_ready=True)``; all stopped afterwards.

    Depends on ``make_database`` so servers stop before their databases are dropped.
    """
    started: list[ServerProcess] = []

    def start(env: dict[str, str], args: list[str] | None = None, wait_ready: bool = True,
              workdir: Path | None = None, port: int | None = None) -> ServerProcess:
        wd = workdir or tmp_path
        if not (wd / "aegra.json").exists():
            write_project(wd)
        server = ServerProcess(wd, env, args, port)
        started.append(server)
        return server.start(wait_ready=wait_ready)

    yield start
    failed = getattr(request.node, "rep_call", None)
    for server in started:  # all at once: each drains on its own, none waits for another
        server.terminate()
    for server in started:
        server.stop()
        if failed is not None and failed.failed:
            sys.stderr.write(f"\n--- server {server.port} log ---\n{server.logs()}\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
