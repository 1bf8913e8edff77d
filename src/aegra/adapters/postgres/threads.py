"""The ``thread`` table: rows in, Thread dicts (the SDK's ``Thread`` shape) out.

Each public method is one bridge crossing on one pooled connection. The row keeps a cache
of the latest state (``values``, ``interrupts``, ``state_updated_at``) so thread search can
filter on values and list previews without loading a graph. Checkpoints live in
LangGraph's own tables and are handled by ``aegra.adapters.langgraph.state``.

Every method takes ``where``, the caller's authorization filter (spec/auth.md item 11),
compiled into the statement itself; without one the statement is the unfiltered one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

import asyncpg

from aegra.adapters.postgres import filters
from aegra.adapters.postgres.pool import PgPool
from aegra.domain.auth import Filter
from aegra.domain.errors import Conflict, NotFound

# Wire name -> SQL column. Doubles as the whitelist for ORDER BY and the select list, so
# no client string is ever spliced into SQL.
COLUMNS = {
    "thread_id": "thread_id", "created_at": "created_at", "updated_at": "updated_at",
    "state_updated_at": "state_updated_at", "metadata": "metadata", "status": "status",
    "config": "config", "values": '"values"', "interrupts": "interrupts", "error": "error",
}
SORTABLE = ("thread_id", "status", "created_at", "updated_at", "state_updated_at")
ACTIVE_RUN = ("EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id "
              "AND r.status IN ('pending', 'running'))")


T = TypeVar("T")


def _iso(value: T) -> T | str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value


def to_thread(row: dict[str, Any], *, include_ttl: bool = False) -> dict[str, Any]:
    """Row -> Thread; only the keys the row has (``select`` projects in SQL)."""
    out = {key: _iso(row[key]) for key in COLUMNS if key in row}
    if include_ttl and row.get("ttl"):
        out["ttl"] = row["ttl"]
    return out


def _conditions(metadata: dict[str, Any] | None, values: dict[str, Any] | None,
                status: str | None, ids: list[str] | None,
                flt: Filter | None) -> tuple[str, list[Any]]:
    """WHERE clause and its arguments: JSONB containment, as the platform does."""
    where: list[str] = []
    args: list[Any] = []
    if flt:
        where.append(filters.where(flt, "t.metadata", args))
    if metadata:
        args.append(metadata)
        where.append(f"t.metadata @> ${len(args)}::jsonb")
    if values:
        args.append(values)
        where.append(f't."values" @> ${len(args)}::jsonb')
    if status:
        args.append(status)
        where.append(f"t.status = ${len(args)}")
    if ids is not None:
        args.append(ids)
        where.append(f"t.thread_id = ANY(${len(args)}::text[])")
    return (" WHERE " + " AND ".join(where)) if where else "", args


# LangGraph's three checkpoint tables (what its saver's adelete_thread removes) go with
# the row, in the same transaction and round trip.
DELETE_THREADS = """
    WITH gone AS (DELETE FROM thread WHERE thread_id = ANY($1::text[]) RETURNING thread_id),
         c AS (DELETE FROM checkpoints WHERE thread_id = ANY($1::text[])),
         b AS (DELETE FROM checkpoint_blobs WHERE thread_id = ANY($1::text[])),
         w AS (DELETE FROM checkpoint_writes WHERE thread_id = ANY($1::text[]))
    SELECT thread_id FROM gone"""
# Filtered: only the checkpoints of the rows the filter let go.
DELETE_VISIBLE = """
    WITH gone AS (DELETE FROM thread t WHERE t.thread_id = ANY($1::text[]) AND {pred}
                  RETURNING thread_id),
         c AS (DELETE FROM checkpoints WHERE thread_id IN (SELECT thread_id FROM gone)),
         b AS (DELETE FROM checkpoint_blobs WHERE thread_id IN (SELECT thread_id FROM gone)),
         w AS (DELETE FROM checkpoint_writes WHERE thread_id IN (SELECT thread_id FROM gone))
    SELECT thread_id FROM gone"""


class PgThreads:
    """The ``ThreadStore`` port on PostgreSQL."""

    def __init__(self, pg: PgPool) -> None:
        self.pg = pg

    async def create(self, thread_id: str, metadata: dict[str, Any],
                     ttl: dict[str, Any] | None, if_exists: str, *,
                     where: Filter | None = None) -> tuple[dict[str, Any], bool]:
        """(thread, created). An existing id is a Conflict unless ``if_exists=do_nothing``
        and the caller may see it: someone else's thread is never handed back."""
        async def _q(conn: asyncpg.Connection) -> tuple[dict[str, Any] | None, bool]:
            row = await conn.fetchrow(
                "INSERT INTO thread (thread_id, metadata, ttl, state_updated_at) "
                "VALUES ($1, $2, $3, now()) ON CONFLICT (thread_id) DO NOTHING RETURNING *",
                thread_id, metadata, ttl)
            if row is not None:
                return dict(row), True
            if if_exists != "do_nothing":
                return None, False
            args: list[Any] = [thread_id]
            scope = filters.and_where(where, "t.metadata", args)
            row = await conn.fetchrow(
                f"SELECT * FROM thread t WHERE t.thread_id = $1{scope}", *args)
            return (dict(row) if row is not None else None), False
        row, created = await self.pg.run(_q)
        if row is None:
            raise Conflict(f"Thread with ID {thread_id} already exists")
        return to_thread(row), created

    async def row(self, thread_id: str, *, where: Filter | None = None) -> dict[str, Any]:
        """The raw row plus ``active_run`` (a pending/running run exists); NotFound if absent."""
        args: list[Any] = [thread_id]
        scope = filters.and_where(where, "t.metadata", args)
        row = await self.pg.fetchrow(
            f"SELECT t.*, {ACTIVE_RUN} AS active_run FROM thread t "
            f"WHERE t.thread_id = $1{scope}", *args)
        if row is None:
            raise NotFound(f"Thread with ID {thread_id} not found")
        return row

    async def get(self, thread_id: str, *, include_ttl: bool = False,
                  where: Filter | None = None) -> dict[str, Any]:
        return to_thread(await self.row(thread_id, where=where), include_ttl=include_ttl)

    async def patch(self, thread_id: str, metadata: dict[str, Any] | None,
                    ttl: dict[str, Any] | None, *, where: Filter | None = None
                    ) -> dict[str, Any]:
        """Merge ``metadata`` into the existing keys (top level, like the platform)."""
        args: list[Any] = [thread_id, metadata or {}, ttl]
        scope = filters.and_where(where, "t.metadata", args)
        row = await self.pg.fetchrow(
            "UPDATE thread t SET metadata = t.metadata || $2::jsonb, "
            "ttl = COALESCE($3, t.ttl), updated_at = now() "
            f"WHERE t.thread_id = $1{scope} RETURNING *", *args)
        if row is None:
            raise NotFound(f"Thread with ID {thread_id} not found")
        return to_thread(row)

    async def delete(self, thread_ids: list[str], *, where: Filter | None = None
                     ) -> list[str]:
        """Delete threads with their checkpoints, in one statement (runs and crons go by
        ON DELETE CASCADE); returns the ids deleted."""
        if where:
            args: list[Any] = [thread_ids]
            pred = filters.where(where, "t.metadata", args)
            rows = await self.pg.fetch(DELETE_VISIBLE.format(pred=pred), *args)
        else:
            rows = await self.pg.fetch(DELETE_THREADS, thread_ids)
        return [r["thread_id"] for r in rows]

    async def existing(self, thread_ids: list[str], *, where: Filter | None = None
                       ) -> list[str]:
        args: list[Any] = [thread_ids]
        scope = filters.and_where(where, "t.metadata", args)
        rows = await self.pg.fetch(
            f"SELECT thread_id FROM thread t WHERE t.thread_id = ANY($1::text[]){scope}",
            *args)
        return [r["thread_id"] for r in rows]

    async def copy(self, source_id: str, new_id: str, *, where: Filter | None = None,
                   metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """New row with the source's metadata (or ``metadata``), config and cached state;
        status ``idle`` as the platform reports a fresh copy."""
        args: list[Any] = [source_id, new_id]
        column = "t.metadata"
        if metadata is not None:
            args.append(metadata)
            column = f"${len(args)}::jsonb"
        scope = filters.and_where(where, "t.metadata", args)
        row = await self.pg.fetchrow(
            "INSERT INTO thread (thread_id, metadata, config, \"values\", interrupts, user_id, "
            f"state_updated_at) SELECT $2, {column}, t.config, t.\"values\", t.interrupts, "
            f"t.user_id, now() FROM thread t WHERE t.thread_id = $1{scope} RETURNING *",
            *args)
        if row is None:
            raise NotFound(f"Thread with ID {source_id} not found")
        return to_thread(row)

    async def set_state(self, thread_id: str, values: object, interrupts: dict[str, Any],
                        has_next: bool, *, where: Filter | None = None) -> None:
        """Refresh the cached state after a state write and recompute status (spec §3.2:
        pending next nodes -> interrupted; a queued or running run keeps it busy)."""
        args: list[Any] = [thread_id, values, interrupts, has_next]
        scope = filters.and_where(where, "t.metadata", args)
        await self.pg.execute(
            f"UPDATE thread t SET \"values\" = $2, interrupts = $3, "
            f"status = CASE WHEN {ACTIVE_RUN} THEN 'busy' "
            f"WHEN $4 THEN 'interrupted' ELSE 'idle' END, "
            f"error = NULL, updated_at = now(), state_updated_at = now() "
            f"WHERE t.thread_id = $1{scope}", *args)

    async def search(self, *, metadata: dict[str, Any] | None, values: dict[str, Any] | None,
                     status: str | None, ids: list[str] | None, limit: int, offset: int,
                     sort_by: str | None, sort_order: str | None,
                     columns: list[str] | None, where: Filter | None = None
                     ) -> tuple[list[dict[str, Any]], bool]:
        """(page, whether another page follows). Default order: newest first, id tie-break."""
        clause, args = _conditions(metadata, values, status, ids, where)
        key = sort_by if sort_by in SORTABLE else "created_at"
        direction = "ASC" if (sort_order or "").lower() == "asc" else "DESC"
        wanted = columns or list(COLUMNS)
        select = ", ".join(f"t.{COLUMNS[c]}" for c in wanted if c in COLUMNS) or "t.thread_id"
        args.extend([limit + 1, offset])
        rows = await self.pg.fetch(
            f"SELECT {select} FROM thread t{clause} "
            f"ORDER BY t.{COLUMNS[key]} {direction} NULLS LAST, t.thread_id {direction} "
            f"LIMIT ${len(args) - 1} OFFSET ${len(args)}", *args)
        return [to_thread(r) for r in rows[:limit]], len(rows) > limit

    async def count(self, *, metadata: dict[str, Any] | None, values: dict[str, Any] | None,
                    status: str | None, where: Filter | None = None) -> int:
        clause, args = _conditions(metadata, values, status, None, where)
        return int(await self.pg.fetchval(f"SELECT count(*) FROM thread t{clause}", *args))
