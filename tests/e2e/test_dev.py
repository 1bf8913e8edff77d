"""`aegra dev` end to end: embedded PostgreSQL, clean stop, hot reload. No DATABASE_URL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from aegra import scaffold
from tests.conftest import free_port
from tests.e2e.conftest import base_env

FIRST_START_S = 90.0  # initdb on a cold, 2-core machine


class Dev:
    def __init__(self, root: Path, args: list[str]) -> None:
        self.root = root
        self.port = free_port()
        self.log = root / "dev.log"
        env = base_env("", WORKER_DRAIN_TIMEOUT="2")
        del env["DATABASE_URL"]  # the point: no database configured at all
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aegra", "dev", "--port", str(self.port), *args],
                cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"aegra dev exited {self.proc.returncode}:\n{self.text()}")
            if check():
                return
            time.sleep(0.2)
        raise AssertionError(f"{what} not seen after {timeout}s:\n{self.text()[-8000:]}")

    def healthy(self) -> bool:
        try:
            resp = httpx.get(self.url + "/health", timeout=2)
        except httpx.HTTPError:
            return False
        return (resp.status_code == 200
                and resp.json()["components"]["database"] == "healthy")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def dev() -> Iterator[Callable[..., Dev]]:
    # Not pytest's tmp_path: as root, pgserver runs PostgreSQL as its own user and opens
    # the path to it, but any pytest session starting on the machine resets
    # /tmp/pytest-of-root to 0700, cutting a running cluster off its data directory.
    tmp_path = Path(tempfile.mkdtemp(prefix="aegra-dev-"))
    started: list[Dev] = []

    def start(*args: str) -> Dev:
        list(scaffold.create(tmp_path))
        started.append(Dev(tmp_path, list(args)))
        return started[-1]

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)
        # A killed parent cannot stop its PostgreSQL; stop the one this test started.
        pid_file = tmp_path / ".aegra" / "pgdata" / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
                deadline = time.monotonic() + 10
                while pid_file.exists() and time.monotonic() < deadline:
                    time.sleep(0.1)  # the postmaster removes it as it exits
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_dev_starts_embedded_postgres_and_stops_cleanly(dev):
    d = dev("--no-reload")
    d.wait_for(d.healthy, FIRST_START_S, "/health with the database connected")
    log = d.text()
    assert "starting embedded PostgreSQL in .aegra/pgdata ..." in log
    assert "PostgreSQL ready: postgresql://" in log
    assert httpx.get(d.url + "/info").json()["graphs"] == ["agent"]
    assert d.stop() == 0
    pgdata = d.root / ".aegra" / "pgdata"
    assert (pgdata / "PG_VERSION").is_file()  # kept for the next run
    assert not (pgdata / "postmaster.pid").exists()  # and the server was stopped with us


def test_dev_reload_restarts_on_change(dev):
    d = dev()
    d.wait_for(d.healthy, FIRST_START_S, "/health with the database connected")
    assert d.text().count('"supervisor.ready"') == 1
    agent = d.root / "graphs" / "agent.py"
    agent.write_text(agent.read_text() + "\n# edited\n")
    stat = agent.stat()  # coarse filesystem clocks: make sure the mtime moves
    os.utime(agent, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    d.wait_for(lambda: "change detected in graphs/agent.py: restarting" in d.text(), 20,
               "the restart message")
    d.wait_for(lambda: d.text().count('"supervisor.ready"') == 2 and d.healthy(), 60,
               "a second, healthy server")
    assert d.stop() == 0
