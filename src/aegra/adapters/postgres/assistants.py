"""The ``assistant`` and ``assistant_versions`` tables: rows in, Assistant dicts out.

``PgAssistants`` is the ``AssistantStore`` port. Every method is one bridge crossing on
one pooled connection; multi-statement work runs in one transaction there. Reads are
scoped to the graphs this server serves (``graph_ids``), as LangGraph Platform does, so
assistants of a graph removed from ``aegra.json`` are hidden instead of failing later.
Version rows are immutable: a PATCH adds ``max(version) + 1`` and makes it current;
``set_latest`` copies one back. The caller's authorization filter (``where``) is compiled
into each statement: a row it excludes is not found, like a missing one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, TypeVar

import asyncpg

from aegra.adapters.langgraph.graphs import GraphRegistry
from aegra.adapters.postgres.filters import and_where
from aegra.adapters.postgres.filters import where as sql_where
from aegra.adapters.postgres.pool import PgPool
from aegra.domain.assistants import (
    COLUMNS,
    PATCHED,
    SYSTEM_METADATA,
    VERSION_COLUMNS,
    Changes,
    NewAssistant,
    Page,
    Query,
    Row,
    ThreadCascade,
    default_assistant_id,
    merged,
    not_found,
)
from aegra.domain.auth import Filter
from aegra.domain.errors import NotFound

_SELECT = ", ".join(COLUMNS)
_VERSION_SELECT = ", ".join(VERSION_COLUMNS)
_RETURNING = ", ".join("a." + c for c in COLUMNS)
# Sort keys -> SQL; the only client strings that reach ORDER BY, and only through here.
# Names sort case-insensitively, as on the platform.
SORT_SQL = {"assistant_id": "assistant_id", "graph_id": "lower(graph_id)",
            "name": "lower(name)", "created_at": "created_at", "updated_at": "updated_at"}



T = TypeVar("T")


def _iso(value: T) -> T | str:
    return value.astimezone(dt.UTC).isoformat() if isinstance(value, dt.datetime) else value


def to_assistant(row: dict[str, Any]) -> Row:
    return {key: _iso(row[key]) for key in COLUMNS}


def to_version(row: dict[str, Any]) -> Row:
    return {key: _iso(row[key]) for key in VERSION_COLUMNS}


_INSERT = f"""
WITH a AS (
    INSERT INTO assistant (assistant_id, graph_id, name, description, config, context,
                           metadata, version)
    SELECT u.*, 1 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[],
                              $6::jsonb[], $7::jsonb[]) AS u
    ON CONFLICT (assistant_id) DO NOTHING
    RETURNING *
), v AS (
    INSERT INTO assistant_versions (assistant_id, version, graph_id, name, description,
                                    config, context, metadata, created_at)
    SELECT assistant_id, version, graph_id, name, description, config, context, metadata,
           created_at FROM a
    ON CONFLICT DO NOTHING
)
SELECT {_SELECT} FROM a
"""


class PgAssistants:
    """The ``AssistantStore`` port on PostgreSQL."""

    def __init__(self, pg: PgPool, graph_ids: Sequence[str]) -> None:
        self.pg = pg
        self.graph_ids = list(graph_ids)

    async def get(self, assistant_id: str, *, where: Filter | None = None) -> Row:
        args: list[Any] = [assistant_id, self.graph_ids]
        row = await self.pg.fetchrow(
            f"SELECT {_SELECT} FROM assistant WHERE assistant_id = $1 AND graph_id = ANY($2) "
            f"{and_where(where, 'metadata', args)}", *args)
        if row is None:
            raise not_found(assistant_id)
        return to_assistant(row)

    async def create(self, new: NewAssistant, *, where: Filter | None = None
                     ) -> tuple[Row | None, bool]:
        async def _q(conn: asyncpg.Connection) -> tuple[dict[str, Any] | None, bool]:
            row = await conn.fetchrow(_INSERT, [new.assistant_id], [new.graph_id], [new.name],
                                      [new.description], [new.config], [new.context],
                                      [new.metadata])
            if row is not None:
                return dict(row), True
            args: list[Any] = [new.assistant_id]
            existing = await conn.fetchrow(
                f"SELECT {_SELECT} FROM assistant WHERE assistant_id = $1 "
                f"{and_where(where, 'metadata', args)}", *args)
            if existing is not None:
                return dict(existing), False
            if where and await conn.fetchval(
                    "SELECT 1 FROM assistant WHERE assistant_id = $1", new.assistant_id):
                return None, False  # someone else's: a conflict that reveals nothing
            # Deleted between the two statements: a conflict all the same.
            raise not_found(new.assistant_id)
        row, created = await self.pg.run(_q)
        return (to_assistant(row) if row is not None else None), created

    async def patch(self, assistant_id: str, changes: Changes, *,
                    where: Filter | None = None) -> Row:
        return await _patch(self.pg, assistant_id, changes, where=where)

    async def set_latest(self, assistant_id: str, version: int, *,
                         where: Filter | None = None) -> Row:
        """Make an existing version current again (every field comes from that version)."""
        async def _q(conn: asyncpg.Connection) -> dict[str, Any]:
            async with conn.transaction():
                args: list[Any] = [assistant_id]
                found = await conn.fetchval(
                    "SELECT 1 FROM assistant WHERE assistant_id = $1 "
                    f"{and_where(where, 'metadata', args)} FOR UPDATE", *args)
                if found is None:
                    raise not_found(assistant_id)
                row = await conn.fetchrow(f"""
                    UPDATE assistant a SET graph_id = v.graph_id, config = v.config,
                        context = v.context, metadata = v.metadata, name = v.name,
                        description = v.description, version = v.version, updated_at = now()
                    FROM assistant_versions v
                    WHERE a.assistant_id = $1 AND v.assistant_id = $1 AND v.version = $2
                    RETURNING {_RETURNING}""", assistant_id, version)
                if row is None:
                    raise NotFound(f"Version {version} not found for assistant "
                                   f"'{assistant_id}'")
                return dict(row)
        return to_assistant(await self.pg.run(_q))

    async def in_flight_runs(self, assistant_id: str, *, where: Filter | None = None
                             ) -> list[str]:
        args: list[Any] = [assistant_id]
        rows = await self.pg.fetch(
            "SELECT r.run_id FROM assistant a LEFT JOIN runs r "
            "ON r.assistant_id = a.assistant_id AND r.status IN ('pending', 'running') "
            f"WHERE a.assistant_id = $1 {and_where(where, 'a.metadata', args)}", *args)
        if not rows:
            raise not_found(assistant_id)
        return [r["run_id"] for r in rows if r["run_id"] is not None]

    async def thread_ids(self, assistant_id: str) -> list[str]:
        rows = await self.pg.fetch(
            "SELECT thread_id FROM thread WHERE metadata ->> 'assistant_id' = $1", assistant_id)
        return [r["thread_id"] for r in rows]

    async def delete(self, assistant_id: str, *, where: Filter | None = None,
                     threads: list[ThreadCascade] | None = None) -> list[str]:
        async def _q(conn: asyncpg.Connection) -> list[str]:
            async with conn.transaction():
                args: list[Any] = [assistant_id]
                gone = await conn.fetchval(
                    "DELETE FROM assistant WHERE assistant_id = $1 "
                    f"{and_where(where, 'metadata', args)} RETURNING assistant_id", *args)
                if gone is None:
                    raise not_found(assistant_id)
                deleted: list[str] = []
                for cascade in threads or ():
                    deleted += await _delete_threads(conn, assistant_id, cascade)
                return deleted
        return await self.pg.run(_q)

    async def search(self, query: Query, page: Page, *, where: Filter | None = None
                     ) -> tuple[list[Row], int | None]:
        """Stable ties on the id."""
        cond, args = self._where(query, where)
        column = SORT_SQL.get(page.sort_by or "created_at", "created_at")
        # Platform default: newest first; an explicit sort_by without order is descending too.
        direction = "ASC" if page.sort_order == "asc" else "DESC"
        args += [page.limit + 1, page.offset]
        rows = await self.pg.fetch(
            f"SELECT {_SELECT} FROM assistant WHERE {cond} "
            f"ORDER BY {column} {direction}, assistant_id {direction} "
            f"LIMIT ${len(args) - 1} OFFSET ${len(args)}", *args)
        more = len(rows) > page.limit
        return [to_assistant(r) for r in rows[:page.limit]], (
            page.offset + page.limit if more else None)

    async def count(self, query: Query, *, where: Filter | None = None) -> int:
        cond, args = self._where(query, where)
        return int(await self.pg.fetchval(f"SELECT count(*) FROM assistant WHERE {cond}",
                                          *args))

    async def versions(self, assistant_id: str, *, metadata: dict[str, Any] | None,
                       limit: int, offset: int, where: Filter | None = None) -> list[Row]:
        """The filter hides the assistant (404) and, as on the platform, any version
        whose own metadata it excludes."""
        async def _q(conn: asyncpg.Connection) -> list[dict[str, Any]]:
            args: list[Any] = [assistant_id, metadata or None, limit, offset]
            rows = await conn.fetch(
                f"SELECT {_VERSION_SELECT} FROM assistant_versions WHERE assistant_id = $1 "
                "AND ($2::jsonb IS NULL OR metadata @> $2::jsonb) "
                f"{and_where(where, 'metadata', args)} "
                "ORDER BY version DESC LIMIT $3 OFFSET $4", *args)
            if rows and not where:
                return [dict(r) for r in rows]
            args = [assistant_id]
            if await conn.fetchval(
                    "SELECT 1 FROM assistant WHERE assistant_id = $1 "
                    f"{and_where(where, 'metadata', args)}", *args) is None:
                raise not_found(assistant_id)
            return [dict(r) for r in rows]
        return [to_version(r) for r in await self.pg.run(_q)]

    def _where(self, query: Query, flt: Filter | None) -> tuple[str, list[Any]]:
        args: list[Any] = [self.graph_ids]
        clauses = ["graph_id = ANY($1)"]
        if query.graph_id is not None:
            args.append(query.graph_id)
            clauses.append(f"graph_id = ${len(args)}")
        if query.name:
            # strpos, not ILIKE: a name with % or _ is a literal substring (platform rule).
            args.append(query.name.lower())
            clauses.append(f"strpos(lower(name), ${len(args)}) > 0")
        if query.metadata:
            args.append(query.metadata)
            clauses.append(f"metadata @> ${len(args)}::jsonb")
        if flt:
            clauses.append(sql_where(flt, "metadata", args))
        return " AND ".join(clauses), args


async def _delete_threads(conn: asyncpg.Connection, assistant_id: str,
                          cascade: ThreadCascade) -> list[str]:
    if cascade.thread_ids is None:
        rows = await conn.fetch(
            "DELETE FROM thread WHERE metadata ->> 'assistant_id' = $1 RETURNING thread_id",
            assistant_id)
    else:
        args: list[Any] = [assistant_id, cascade.thread_ids]
        rows = await conn.fetch(
            "DELETE FROM thread WHERE metadata ->> 'assistant_id' = $1 "
            f"AND thread_id = ANY($2) {and_where(cascade.where, 'metadata', args)} "
            "RETURNING thread_id", *args)
    return [r["thread_id"] for r in rows]


async def _patch(pg: PgPool, assistant_id: str, changes: Changes, *,
                 where: Filter | None = None, only_if_changed: bool = False) -> Row:
    async def _q(conn: asyncpg.Connection) -> dict[str, Any]:
        async with conn.transaction():
            # Lock first, in its own statement, so max(version) below is read after any
            # concurrent PATCH of this assistant committed (READ COMMITTED snapshots).
            args: list[Any] = [assistant_id]
            cur = await conn.fetchrow(
                f"SELECT {_SELECT} FROM assistant WHERE assistant_id = $1 "
                f"{and_where(where, 'metadata', args)} FOR UPDATE", *args)
            if cur is None:
                raise not_found(assistant_id)
            new = merged(dict(cur), changes)
            if only_if_changed and new == tuple(cur[c] for c in PATCHED):
                return dict(cur)
            row = await conn.fetchrow(f"""
                WITH v AS (
                    INSERT INTO assistant_versions (assistant_id, version, graph_id, config,
                                                    context, metadata, name, description)
                    SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, $6, $7
                    FROM assistant_versions WHERE assistant_id = $1
                    RETURNING *
                )
                UPDATE assistant a SET graph_id = v.graph_id, config = v.config,
                    context = v.context, metadata = v.metadata, name = v.name,
                    description = v.description, version = v.version, updated_at = v.created_at
                FROM v WHERE a.assistant_id = v.assistant_id
                RETURNING {_RETURNING}""", assistant_id, *new)
            return dict(row)
    return to_assistant(await pg.run(_q))


async def ensure_defaults(pg: PgPool, registry: GraphRegistry) -> None:
    """One system assistant per graph (uuid5 id, version 1), safe when instances race.

    Existing ones whose name or description drifted from ``aegra.json`` get a new version,
    as the platform does at registration.
    """
    ids = registry.ids()
    if not ids:
        return
    wanted = {default_assistant_id(g): (g, registry.default_name(g), registry.description(g))
              for g in ids}

    async def _q(conn: asyncpg.Connection) -> list[str]:
        await conn.execute(
            _INSERT, list(wanted), [w[0] for w in wanted.values()],
            [w[1] for w in wanted.values()], [w[2] for w in wanted.values()],
            [{}] * len(wanted), [{}] * len(wanted), [SYSTEM_METADATA] * len(wanted))
        rows = await conn.fetch("SELECT assistant_id, name, description FROM assistant "
                                "WHERE assistant_id = ANY($1)", list(wanted))
        return [r["assistant_id"] for r in rows
                if r["name"] != wanted[r["assistant_id"]][1]
                or wanted[r["assistant_id"]][2] not in (None, r["description"])]
    for assistant_id in await pg.run(_q):
        _, name, description = wanted[assistant_id]
        await _patch(pg, assistant_id, Changes(name=name, description=description),
                     only_if_changed=True)
