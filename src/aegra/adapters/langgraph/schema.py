"""Tables of LangGraph's official PostgreSQL checkpointer and store.

Their ``setup()`` runs migrations that include ``CREATE INDEX CONCURRENTLY``, so they need
an autocommit connection, not a transaction: we take a session-level advisory lock
instead, after a lock-free check that skips everything when both are current.
Synchronous: call it in a thread. The vector tables (semantic search) are separate:
``ensure_store_vectors`` runs only when ``store.index`` is configured.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.store.postgres import PostgresStore
from psycopg.rows import dict_row

from aegra.adapters.postgres.migrate import MIGRATION_LOCK_KEY

LANGGRAPH_LOCK_KEY = MIGRATION_LOCK_KEY + 1


def _version(conn: psycopg.Connection[Any], table: str) -> int:
    exists = conn.execute("SELECT to_regclass(%s) AS t", (table,)).fetchone()
    if not exists or exists["t"] is None:
        return -1
    row = conn.execute(f"SELECT max(v) AS v FROM {table}").fetchone()
    return -1 if row is None or row["v"] is None else int(row["v"])


def is_current(conn: psycopg.Connection[Any]) -> bool:
    return (
        _version(conn, "checkpoint_migrations") == len(PostgresSaver.MIGRATIONS) - 1
        and _version(conn, "store_migrations") == len(PostgresStore.MIGRATIONS) - 1
    )


def _lock(conn: psycopg.Connection[Any], timeout_s: float = 300.0) -> None:
    """Take the session lock by polling, never by blocking in a statement.

    A session blocked in ``pg_advisory_lock`` is an open transaction, and the holder's
    ``CREATE INDEX CONCURRENTLY`` waits for every open transaction to end: two instances
    booting together would deadlock. Short ``pg_try_advisory_lock`` calls never hold one.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (LANGGRAPH_LOCK_KEY,)
                           ).fetchone()
        if row and row["ok"]:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("another instance holds the LangGraph migration lock")
        time.sleep(0.1)


def ensure_langgraph_tables(dsn: str) -> bool:
    """Create/upgrade LangGraph's tables. Returns True when anything had to run."""
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        if is_current(conn):
            return False
        _lock(conn)
        try:
            if is_current(conn):  # it was another instance's turn first
                return False
            PostgresSaver(conn).setup()
            PostgresStore(conn).setup()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LANGGRAPH_LOCK_KEY,))
        return True


def _has_vector(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT 1 AS ok FROM pg_extension WHERE extname = 'vector'").fetchone()
    return row is not None


def ensure_store_vectors(dsn: str, index: dict[str, Any], migrate: bool) -> str | None:
    """Make the store's ``store_vectors`` table ready for ``index``.

    Returns None when semantic search can run, else why not. pgvector is optional:
    ``CREATE EXTENSION vector`` needs a superuser on many servers, so its
    failure is a reason, not a crash; any later migration error still raises.
    """
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        store = PostgresStore(conn, index=index)  # type: ignore[arg-type]
        current = _version(conn, "vector_migrations") == len(store.VECTOR_MIGRATIONS) - 1
        if current and _has_vector(conn):
            return None
        if not migrate:
            return "the vector migrations have not run (RUN_MIGRATIONS_ON_STARTUP=false)"
        _lock(conn)
        try:
            if not _has_vector(conn):
                try:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except psycopg.Error as exc:
                    why = " ".join(str(exc).split())  # one log line, HINT included
                    return f"cannot create the pgvector extension: {why}"
            store.setup()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LANGGRAPH_LOCK_KEY,))
    return None
