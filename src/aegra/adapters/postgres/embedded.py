"""An embedded PostgreSQL (the ``pgserver`` wheel, pgvector included) for ``aegra dev``
and the test fixtures: no Docker, no system PostgreSQL. Data lives in a folder that
survives restarts; the server stops when the last process using it exits."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def start(data_dir: Path, database: str = "aegra") -> tuple[Any, str]:
    """Start (or attach to) the server in ``data_dir``; return (handle, DSN of ``database``)."""
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]  # exported, not listed in __all__
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return server, server.get_uri(database)


def probe(dsn: str, timeout_s: int = 3) -> str | None:
    """One connection attempt: None when PostgreSQL answers, else the error's first line."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=timeout_s) as conn:
            conn.execute("SELECT 1")
        return None
    except psycopg.Error as exc:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
