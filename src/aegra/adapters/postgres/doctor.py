"""The PostgreSQL half of ``aegra doctor``: one short, read-only, synchronous session.

It gathers numbers and nothing else; ``aegra.doctor`` judges them. Every statement runs
under a statement timeout, so a locked or overloaded database makes the doctor report
rather than hang. A database that was never migrated has no ``runs`` table: the run
figures are then None, and only the migration check has something to say.
"""

from __future__ import annotations

import msgspec
import psycopg
from psycopg.rows import dict_row

from aegra.adapters.postgres.dsn import libpq_dsn
from aegra.domain.errors import StoreUnavailable

STATEMENT_TIMEOUT_MS = 5000
SAMPLE = 3  # expired-lease runs named in the report

_SERVER = """
SELECT current_setting('server_version') AS version,
       current_setting('max_connections')::int AS max_connections,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')
           AS connections,
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND state = 'active') AS active,
       pg_database_size(current_database()) AS size_bytes,
       to_regclass('alembic_version') IS NOT NULL AS has_alembic,
       to_regclass('runs') IS NOT NULL AS has_runs
"""
_REVISION = "SELECT version_num FROM alembic_version"
_QUEUE = """
SELECT count(*) FILTER (WHERE available_at <= now()) AS ready,
       count(*) FILTER (WHERE available_at > now()) AS scheduled,
       extract(epoch FROM now() - min(available_at) FILTER (WHERE available_at <= now()))
           AS oldest_s
FROM runs WHERE status = 'pending'
"""
# The reaper's predicate (leases.py): running, and the lease is gone or past.
_EXPIRED = f"""
SELECT run_id, claimed_by, count(*) OVER () AS total,
       extract(epoch FROM now() - coalesce(lease_expires_at, updated_at)) AS expired_s
FROM runs
WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < now())
ORDER BY coalesce(lease_expires_at, updated_at)
LIMIT {SAMPLE}
"""


class ExpiredLease(msgspec.Struct, frozen=True):
    run_id: str
    claimed_by: str | None
    expired_s: float


class PgFacts(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    connections: int
    active: int
    max_connections: int
    size_bytes: int
    revisions: list[str] | None  # None: no alembic_version table (never migrated)
    ready: int | None = None  # pending and due; None: no runs table
    scheduled: int | None = None  # pending with a later available_at
    oldest_pending_s: float | None = None
    expired: list[ExpiredLease] | None = None  # oldest first, at most SAMPLE
    expired_count: int | None = None  # all of them


def inspect(dsn: str, connect_timeout_s: float) -> PgFacts:
    """Collect the facts; StoreUnavailable with the driver's first line when the database
    cannot be reached or answers with an error."""
    try:
        with psycopg.connect(libpq_dsn(dsn), connect_timeout=max(1, round(connect_timeout_s)),
                             autocommit=True, application_name="aegra doctor",
                             options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}") as conn:
            return _facts(conn)
    except psycopg.Error as exc:
        raise StoreUnavailable(first_line(exc)) from None


def _facts(conn: psycopg.Connection[tuple[object, ...]]) -> PgFacts:
    with conn.cursor(row_factory=dict_row) as cur:
        server = cur.execute(_SERVER).fetchone()
        assert server is not None  # a SELECT without FROM answers one row
        revisions = None
        if server["has_alembic"]:
            revisions = [r["version_num"] for r in cur.execute(_REVISION).fetchall()]
        facts = PgFacts(
            version=server["version"], connections=server["connections"],
            active=server["active"], max_connections=server["max_connections"],
            size_bytes=server["size_bytes"], revisions=revisions)
        if not server["has_runs"]:
            return facts
        queue = cur.execute(_QUEUE).fetchone()
        assert queue is not None  # an aggregate answers one row
        expired = cur.execute(_EXPIRED).fetchall()
    oldest = queue["oldest_s"]
    return msgspec.structs.replace(
        facts, ready=queue["ready"], scheduled=queue["scheduled"],
        oldest_pending_s=None if oldest is None else float(oldest),
        expired=[ExpiredLease(r["run_id"], r["claimed_by"], float(r["expired_s"]))
                 for r in expired],
        expired_count=expired[0]["total"] if expired else 0)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
