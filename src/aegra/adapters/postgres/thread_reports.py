"""``ThreadReports`` on PostgreSQL: the thread row's interrupt state, and the bytes a
thread's checkpoints take in LangGraph's tables (``checkpoints``, ``checkpoint_blobs``,
``checkpoint_writes``; each has an index on ``thread_id``).

The caller's filter is applied to the thread row inside the same statement: a thread the
caller may not see reports nothing, exactly like a missing one. ``pg_column_size`` is the
size as stored (compressed, TOAST included), which is what a TTL would free.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from aegra.adapters.postgres import filters
from aegra.adapters.postgres.pool import PgPool
from aegra.domain.auth import Filter
from aegra.domain.errors import NotFound
from aegra.domain.thread_reports import Json, storage_report

# One snapshot for the three sums (REPEATABLE READ), so a run writing meanwhile cannot
# make the total disagree with its parts.
_CHECKPOINTS = """SELECT count(*) AS n, COALESCE(sum(pg_column_size(checkpoint)
                      + pg_column_size(metadata)), 0)::bigint AS size
                  FROM checkpoints WHERE thread_id = $1"""
_CHANNELS = """SELECT channel, count(*) AS n,
                      COALESCE(sum(pg_column_size(blob)), 0)::bigint AS size
               FROM checkpoint_blobs WHERE thread_id = $1
               GROUP BY channel ORDER BY channel"""
_WRITES = """SELECT count(*) AS n, COALESCE(sum(pg_column_size(blob)), 0)::bigint AS size
             FROM checkpoint_writes WHERE thread_id = $1"""


class PgThreadReports:
    def __init__(self, pg: PgPool) -> None:
        self.pg = pg

    async def interrupt_state(self, thread_id: str, *, where: Filter | None = None
                              ) -> tuple[str, Json] | None:
        args: list[Any] = [thread_id]
        scope = filters.and_where(where, "t.metadata", args)
        row = await self.pg.fetchrow(
            f"SELECT status, interrupts FROM thread t WHERE t.thread_id = $1{scope}", *args)
        if row is None:
            return None
        return str(row["status"]), dict(row["interrupts"] or {})

    async def storage(self, thread_id: str, *, where: Filter | None = None) -> Json:
        return await self.pg.run(_storage, thread_id, where)


async def _storage(conn: asyncpg.Connection, thread_id: str, where: Filter | None) -> Json:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        args: list[Any] = [thread_id]
        scope = filters.and_where(where, "t.metadata", args)
        seen = await conn.fetchval(
            f"SELECT 1 FROM thread t WHERE t.thread_id = $1{scope}", *args)
        if seen is None:
            raise NotFound(f"Thread with ID {thread_id} not found")
        points = await conn.fetchrow(_CHECKPOINTS, thread_id)
        channels = await conn.fetch(_CHANNELS, thread_id)
        writes = await conn.fetchrow(_WRITES, thread_id)
    return storage_report(
        thread_id, (points["n"], points["size"]),
        [(r["channel"], r["n"], r["size"]) for r in channels], (writes["n"], writes["size"]))
