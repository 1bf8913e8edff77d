"""Process lifecycle of `aegra serve`: systemd notify, SIGTERM, migrations, bad settings."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import psycopg

from aegra.adapters.postgres.migrate import head
from tests.e2e.conftest import base_env, write_project

HEAD = head()  # the newest migration's revision


def _recv(sock: socket.socket, timeout: float) -> str | None:
    sock.settimeout(timeout)
    try:
        return sock.recv(256).decode()
    except TimeoutError:
        return None


def test_sd_notify_ready_watchdog_and_stopping(start_server, database_url, tmp_path):
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    env = base_env(database_url, NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
    server = start_server(env, wait_ready=False)
    # READY=1 is sent in the same Trio step that makes /ready answer 200, so the moment
    # /ready says 200 the datagram must already be waiting; and not a moment before.
    listener.setblocking(False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            status = httpx.get(server.url + "/ready", timeout=1).status_code
        except httpx.HTTPError:
            status = None
        if status == 200:
            break
        try:
            early = listener.recv(256)
        except BlockingIOError:
            early = None
        # The datagram may land between our GET and this recv; if so /ready must now be 200.
        if early is not None:
            assert early == b"READY=1"
            assert httpx.get(server.url + "/ready").status_code == 200
            break
        time.sleep(0.05)
    else:
        raise AssertionError("server never became ready")
    if status == 200:
        assert listener.recv(256) == b"READY=1"
    pings = [_recv(listener, 2) for _ in range(3)]
    assert pings == ["WATCHDOG=1"] * 3
    server.signal(signal.SIGTERM)
    seen = []
    while (msg := _recv(listener, 5)) is not None:
        seen.append(msg)
        if msg == "STOPPING=1":
            break
    assert "STOPPING=1" in seen
    assert server.wait(10) == 0
    listener.close()


def test_sigterm_exits_zero_within_the_drain_timeout(start_server, database_url):
    server = start_server(base_env(database_url, WORKER_DRAIN_TIMEOUT="3"))
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait(3 + 5) == 0
    assert time.monotonic() - started < 8
    logs = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    events = [entry["event"] for entry in logs]
    assert "supervisor.draining" in events and "supervisor.stopped" in events
    # database_url copies the migrated template: the startup check ran and found both our
    # schema and LangGraph's tables current (a stale template would show up here).
    done = [(e["before"], e["upgraded"], e["langgraph_tables_changed"])
            for e in logs if e["event"] == "migrations.done"]
    assert done == [(HEAD, False, False)]


def test_two_instances_on_an_empty_database_migrate_once(start_server, make_database, tmp_path):
    database_url = make_database()  # empty, not the migrated template: the subject
    env = base_env(database_url)
    write_project(tmp_path)
    a = start_server(env, wait_ready=False)
    b = start_server(env, wait_ready=False)
    a.wait_ready()
    b.wait_ready()
    ran = []
    for server in (a, b):
        for line in server.logs().splitlines():
            if line.startswith("{") and '"migrations.done"' in line:
                ran.append(json.loads(line)["upgraded"])
    assert sorted(ran) == [False, True]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"assistant", "assistant_versions", "thread", "runs", "crons",
            "checkpoints", "checkpoint_writes", "store"} <= tables


def test_migrations_can_be_left_to_the_operator(start_server, make_database, tmp_path):
    database_url = make_database()  # empty: serve must refuse it until `aegra db upgrade`
    env = base_env(database_url, RUN_MIGRATIONS_ON_STARTUP="false")
    write_project(tmp_path)
    refused = _aegra(["serve"], env, tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"aegra: database schema is at nothing, this version needs {HEAD}; run `aegra db "
        "upgrade` (RUN_MIGRATIONS_ON_STARTUP=false)")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,)
    assert _aegra(["db", "upgrade"], env, tmp_path).returncode == 0
    server = start_server(env)
    assert '"migrations.skipped"' in server.logs()


def _aegra(args, env, cwd, timeout=60):
    return subprocess.run([sys.executable, "-m", "aegra", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_db_commands(make_database, tmp_path):
    database_url = make_database()  # empty: `db current` starts at (none)
    env = base_env(database_url)
    assert _aegra(["db", "current"], env, tmp_path).stdout.strip() == "(none)"
    up = _aegra(["db", "upgrade"], env, tmp_path)
    assert up.returncode == 0, up.stderr
    assert f"database at {HEAD}" in up.stdout
    assert _aegra(["db", "current"], env, tmp_path).stdout.strip() == f"{HEAD} (head)"
    history = _aegra(["db", "history", "-v"], env, tmp_path)
    assert "Revision ID: 0001" in history.stdout
    assert f"Revision ID: {HEAD}" in history.stdout
    down = _aegra(["db", "downgrade", "base"], env, tmp_path)
    assert down.returncode == 0, down.stderr
    assert _aegra(["db", "current"], env, tmp_path).stdout.strip() == "(none)"


def test_bad_settings_exit_non_zero_with_one_line(database_url, tmp_path):
    env = base_env(database_url, WORKER_COUNT="abc")
    write_project(tmp_path)
    bad_env = _aegra(["serve"], env, tmp_path)
    assert bad_env.returncode != 0
    assert bad_env.stderr.strip() == (
        "aegra: config error: worker.count = 'abc' (env WORKER_COUNT): "
        "expected `int`, got `str`")

    (tmp_path / "supervisor.toml").write_text("[worker]\ncount = 2\nturbo = true\n")
    bad_toml = _aegra(["serve"], base_env(database_url), tmp_path)
    assert bad_toml.returncode != 0
    assert bad_toml.stderr.strip() == (
        "aegra: config error: worker.turbo = True (supervisor.toml): unknown setting")
    (tmp_path / "supervisor.toml").unlink()

    (tmp_path / "aegra.json").write_text(json.dumps({"graphs": {"agent": "./gone.py:graph"}}))
    bad_graph = _aegra(["serve"], base_env(database_url), tmp_path)
    assert bad_graph.returncode != 0
    line = bad_graph.stderr.strip()
    assert "\n" not in line
    assert line.startswith("aegra: config error: graphs.agent = './gone.py:graph' (aegra.json)")
    assert "not found" in line


def test_unreachable_database_fails_startup_with_one_line(tmp_path):
    env = base_env("postgresql://nobody@127.0.0.1:1/none",
                   AEGRA__POSTGRES__STARTUP_WAIT_S="1")
    write_project(tmp_path)
    result = _aegra(["serve"], env, tmp_path, timeout=90)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "aegra: cannot connect to PostgreSQL")
