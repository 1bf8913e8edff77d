"""`aegra doctor` and `aegra db` as an operator runs them: real processes, real PostgreSQL
and Redis (spec operations.md §6).

One server carries the live-deployment story: healthy with a run in flight (exit 0),
Redis unreachable (exit 1, "redis"), then the server is killed mid-run and the run's
lease expires (exit 1, "lease"). The embedded-database test starts the PostgreSQL that
`aegra dev` uses, the way dev does, and runs the commands without DATABASE_URL.
"""

from __future__ import annotations

import contextlib
import json
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
import psycopg
import pytest

from aegra import scaffold
from aegra.adapters.postgres import migrate
from tests.conftest import free_port
from tests.e2e.conftest import GRAPHS, base_env, write_project


def aegra(*args: str, env: dict[str, str], cwd: Path | None = None
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aegra", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def lines(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The doctor's report as check name -> status (the summary line left out)."""
    out = {}
    for line in proc.stdout.splitlines()[:-1]:
        status, rest = line.split(maxsplit=1)
        out[rest[:14].strip()] = status
    return out


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_status(dsn: str, run_id: str) -> tuple[str, bool] | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT status, lease_expires_at < now() FROM runs"
                           " WHERE run_id = %s", (run_id,)).fetchone()
    return None if row is None else (row[0], bool(row[1]))


def test_doctor_on_a_live_deployment(start_server, database_url, redis_url, tmp_path):
    write_project(tmp_path, {"slow": f"{GRAPHS / 'slow.py'}:graph"})
    env = base_env(database_url, REDIS_BROKER_ENABLED="true", REDIS_URL=redis_url,
                   LEASE_DURATION_SECONDS="3", HEARTBEAT_INTERVAL_SECONDS="0.5")
    server = start_server(env)
    thread = httpx.post(server.url + "/threads", json={}).json()["thread_id"]
    run = httpx.post(f"{server.url}/threads/{thread}/runs",
                     json={"assistant_id": "slow", "input": {"delay": 60}}).json()["run_id"]
    until(lambda: run_status(database_url, run) == ("running", False), 20, "the run to start")

    healthy = aegra("doctor", env=env, cwd=tmp_path)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    report = lines(healthy)
    assert report.pop("connections") in ("ok", "warn")  # the test server may be shared
    assert report == {"database": "ok", "database size": "ok", "queue depth": "ok",
                      "oldest pending": "ok", "leases": "ok", "migration": "ok", "redis": "ok"}
    assert healthy.stdout.splitlines()[-1].startswith("doctor: no problems found")

    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    no_redis = aegra("doctor", "--json", env={**env, "REDIS_URL": unreachable}, cwd=tmp_path)
    assert no_redis.returncode == 1
    doc = json.loads(no_redis.stdout)
    assert doc["ok"] is False and doc["problems"] == ["redis"]
    assert "unreachable" in doc["checks"][-1]["detail"]

    server.signal(signal.SIGKILL)  # the instance dies holding the run's lease
    server.wait(10)
    until(lambda: run_status(database_url, run) == ("running", True), 10, "the lease to expire")
    dead = aegra("doctor", env=env, cwd=tmp_path)
    assert dead.returncode == 1, dead.stdout + dead.stderr
    failing = [line for line in dead.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failing) == 1 and "lease" in failing[0] and run in failing[0], dead.stdout
    assert dead.stdout.splitlines()[-1] == "doctor: 1 problem: leases"


def test_doctor_names_a_schema_that_is_not_at_head(make_database, tmp_path):
    fresh = make_database()  # empty (never migrated), as is `behind` before its upgrade
    never = aegra("doctor", env=base_env(fresh), cwd=tmp_path)
    assert never.returncode == 1
    assert lines(never)["migration"] == "FAIL" and lines(never)["leases"] == "skip"
    assert "never migrated" in never.stdout and "aegra db upgrade" in never.stdout

    behind = make_database()
    migrate.upgrade(behind, "0002")
    old = aegra("doctor", env=base_env(behind), cwd=tmp_path)
    assert old.returncode == 1
    assert [line for line in old.stdout.splitlines() if line.startswith("FAIL")] == [
        f"FAIL migration       database at 0002, this aegra's head is {migrate.head()}:"
        " run `aegra db upgrade` (or start `aegra serve`, which migrates on startup);"
        " if the database is ahead, this aegra is older than the one that migrated it"]


def test_database_errors_are_one_line(database_url, tmp_path):
    refused = base_env(f"postgresql://postgres@127.0.0.1:{free_port()}/aegra")
    bad_url = base_env("mysql://user:topsecret@host/db")
    cases = [
        (("db", "current"), refused, "Connection refused"),
        (("doctor",), refused, "Connection refused"),
        (("db", "current"), bad_url, "scheme 'mysql'"),
        (("db", "downgrade", "nosuchrev"), base_env(database_url), "nosuchrev"),
    ]
    for args, env, expected in cases:
        proc = aegra(*args, env=env, cwd=tmp_path)
        errors = proc.stderr.strip().splitlines() if args[0] == "db" else proc.stdout.splitlines()
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert len(errors) == 1 and expected in errors[0], (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr and "topsecret" not in proc.stdout + proc.stderr


@pytest.fixture
def dev_database() -> Iterator[tuple[Path, str]]:
    """A scaffolded project whose embedded PostgreSQL runs, started as `aegra dev` does."""
    from aegra import localdb

    # Not pytest's tmp_path: see tests/e2e/test_dev.py (the cluster must stay reachable).
    root = Path(tempfile.mkdtemp(prefix="aegra-doctor-"))
    list(scaffold.create(root))
    handle, dsn = localdb.start_embedded(localdb.embedded_dir(root))
    try:
        yield root, dsn
    finally:
        # Immediate shutdown: a throwaway cluster needs no shutdown checkpoint.
        pid_file = localdb.embedded_dir(root) / "postmaster.pid"
        with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
            until(lambda: not pid_file.exists(), 10, "PostgreSQL to stop")
        handle.cleanup()  # type: ignore[attr-defined]  # drops our handle; nothing to stop
        shutil.rmtree(root, ignore_errors=True)


def test_db_and_doctor_use_the_dev_database_without_database_url(dev_database):
    root, dsn = dev_database
    env = base_env("")
    del env["DATABASE_URL"]
    before = aegra("db", "current", env=env, cwd=root)
    assert before.stdout.strip() == "(none)", before.stderr
    assert "using the embedded PostgreSQL in .aegra/pgdata" in before.stderr
    migrate.upgrade(dsn)  # as `aegra dev`'s server does on startup
    current = aegra("db", "current", env=env, cwd=root)
    assert current.stdout.strip() == f"{migrate.head()} (head)", current.stderr
    checked = aegra("doctor", env=env, cwd=root)
    assert checked.returncode == 0, checked.stdout
    assert "[embedded PostgreSQL in .aegra/pgdata]" in checked.stdout
    # The commands attached to dev's server and left it running.
    assert (root / ".aegra" / "pgdata" / "postmaster.pid").exists()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
