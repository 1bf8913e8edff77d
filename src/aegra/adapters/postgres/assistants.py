"""The ``assistant`` and ``assistant_versions`` tables: rows in, Assistant dicts out.

Every public function is one bridge crossing on one pooled connection; multi-statement
work runs in one transaction there. Reads are scoped to the graphs this server serves
(``graph_ids``), as LangGraph Platform does, so assistants of a graph removed from
``aegra.json`` are hidden instead of failing later. Version rows are immutable: a PATCH
adds ``max(version) + 1`` and makes it current; ``set_latest`` copies one back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from aegra.adapters.langgraph.graphs import GraphRegistry, default_assistant_id
from aegra.adapters.postgres.pool import PgPool
from aegra.domain.errors import NotFound

# Wire order of the platform's Assistant object.
COLUMNS = ("assistant_id", "graph_id", "config", "context", "metadata", "name", "created_at",
           "updated_at", "version", "description")
VERSION_COLUMNS = ("assistant_id", "version", "graph_id", "config", "context", "metadata",
                   "created_at", "name", "description")
_SELECT = ", ".join(COLUMNS)
_VERSION_SELECT = ", ".join(VERSION_COLUMNS)
# Sort keys -> SQL; the only client strings that reach ORDER BY, and only through here.
# Names sort case-insensitively, as on the platform.
SORT_SQL = {"assistant_id": "assistant_id", "graph_id": "lower(graph_id)",
            "name": "lower(name)", "created_at": "created_at", "updated_at": "updated_at"}
SYSTEM_METADATA = {"created_by": "system"}
_PATCHED = ("graph_id", "config", "context", "metadata", "name", "description")


def _iso(value: Any) -> Any:
    return value.astimezone(dt.UTC).isoformat() if isinstance(value, dt.datetime) else value


def to_assistant(row: dict[str, Any]) -> dict[str, Any]:
    return {key: _iso(row[key]) for key in COLUMNS}


def to_version(row: dict[str, Any]) -> dict[str, Any]:
    return {key: _iso(row[key]) for key in VERSION_COLUMNS}


def not_found(assistant_id: str) -> NotFound:
    return NotFound(f"Assistant '{assistant_id}' not found")


def canonical_id(registry: GraphRegistry, value: str) -> str:
    """A graph id names its default assistant; UUIDs compare in canonical form."""
    if value in registry:
        return default_assistant_id(value)
    try:
        return str(UUID(value))
    except ValueError:
        return value


async def resolve_assistant_id(pg: PgPool, registry: GraphRegistry, value: str) -> str:
    """The id of the assistant ``value`` names (an assistant id or a graph id), or NotFound."""
    assistant_id = canonical_id(registry, value)
    found = await pg.fetchval(
        "SELECT assistant_id FROM assistant WHERE assistant_id = $1 AND graph_id = ANY($2)",
        assistant_id, registry.ids())
    if found is None:
        raise not_found(value)
    return str(found)


async def get(pg: PgPool, registry: GraphRegistry, value: str) -> dict[str, Any]:
    row = await pg.fetchrow(
        f"SELECT {_SELECT} FROM assistant WHERE assistant_id = $1 AND graph_id = ANY($2)",
        canonical_id(registry, value), registry.ids())
    if row is None:
        raise not_found(value)
    return to_assistant(row)


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


async def create(pg: PgPool, *, assistant_id: str, graph_id: str, name: str,
                 description: str | None, config: dict[str, Any], context: dict[str, Any],
                 metadata: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Insert an assistant and its version 1 atomically; ``(row, False)`` if the id exists."""
    async def _q(conn: asyncpg.Connection) -> tuple[dict[str, Any], bool]:
        row = await conn.fetchrow(_INSERT, [assistant_id], [graph_id], [name], [description],
                                  [config], [context], [metadata])
        if row is not None:
            return dict(row), True
        existing = await conn.fetchrow(
            f"SELECT {_SELECT} FROM assistant WHERE assistant_id = $1", assistant_id)
        if existing is None:  # deleted between the two statements: a conflict all the same
            raise not_found(assistant_id)
        return dict(existing), False
    row, created = await pg.run(_q)
    return to_assistant(row), created


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
        await patch(pg, assistant_id, name=name, description=description,
                    only_if_changed=True)


async def patch(pg: PgPool, assistant_id: str, *, graph_id: str | None = None,
                config: dict[str, Any] | None = None, context: dict[str, Any] | None = None,
                metadata: dict[str, Any] | None = None, name: str | None = None,
                description: str | None = None, only_if_changed: bool = False
                ) -> dict[str, Any]:
    """Add version max+1 from the current one plus these changes and make it current.

    ``None`` keeps a field; ``metadata`` is merged into the current one (platform rule).
    """
    async def _q(conn: asyncpg.Connection) -> dict[str, Any]:
        async with conn.transaction():
            # Lock first, in its own statement, so max(version) below is read after any
            # concurrent PATCH of this assistant committed (READ COMMITTED snapshots).
            cur = await conn.fetchrow(
                f"SELECT {_SELECT} FROM assistant WHERE assistant_id = $1 FOR UPDATE",
                assistant_id)
            if cur is None:
                raise not_found(assistant_id)
            new = (graph_id or cur["graph_id"],
                   cur["config"] if config is None else config,
                   cur["context"] if context is None else context,
                   cur["metadata"] if metadata is None else {**cur["metadata"], **metadata},
                   cur["name"] if name is None else name,
                   cur["description"] if description is None else description)
            if only_if_changed and new == tuple(cur[c] for c in _PATCHED):
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
                RETURNING {", ".join("a." + c for c in COLUMNS)}""", assistant_id, *new)
            return dict(row)
    return to_assistant(await pg.run(_q))


async def set_latest(pg: PgPool, assistant_id: str, version: int) -> dict[str, Any]:
    """Make an existing version current again (every field comes from that version)."""
    async def _q(conn: asyncpg.Connection) -> dict[str, Any]:
        async with conn.transaction():
            found = await conn.fetchval(
                "SELECT 1 FROM assistant WHERE assistant_id = $1 FOR UPDATE", assistant_id)
            if found is None:
                raise not_found(assistant_id)
            row = await conn.fetchrow(f"""
                UPDATE assistant a SET graph_id = v.graph_id, config = v.config,
                    context = v.context, metadata = v.metadata, name = v.name,
                    description = v.description, version = v.version, updated_at = now()
                FROM assistant_versions v
                WHERE a.assistant_id = $1 AND v.assistant_id = $1 AND v.version = $2
                RETURNING {", ".join("a." + c for c in COLUMNS)}""", assistant_id, version)
            if row is None:
                raise NotFound(f"Version {version} not found for assistant '{assistant_id}'")
            return dict(row)
    return to_assistant(await pg.run(_q))


async def delete(pg: PgPool, assistant_id: str, *, delete_threads: bool) -> list[str]:
    """Delete an assistant (versions, crons and runs cascade); returns deleted thread ids.

    With ``delete_threads`` the threads whose metadata names this assistant go too; their
    checkpoints are the caller's to drop (they live in LangGraph's tables).
    """
    async def _q(conn: asyncpg.Connection) -> list[str]:
        async with conn.transaction():
            gone = await conn.fetchval(
                "DELETE FROM assistant WHERE assistant_id = $1 RETURNING assistant_id",
                assistant_id)
            if gone is None:
                raise not_found(assistant_id)
            if not delete_threads:
                return []
            rows = await conn.fetch(
                "DELETE FROM thread WHERE metadata ->> 'assistant_id' = $1 RETURNING thread_id",
                assistant_id)
            return [r["thread_id"] for r in rows]
    return await pg.run(_q)


def _where(graph_ids: Sequence[str], graph_id: str | None, name: str | None,
           metadata: dict[str, Any] | None) -> tuple[str, list[Any]]:
    args: list[Any] = [list(graph_ids)]
    clauses = ["graph_id = ANY($1)"]
    if graph_id is not None:
        args.append(graph_id)
        clauses.append(f"graph_id = ${len(args)}")
    if name:
        # strpos, not ILIKE: a name with % or _ is a literal substring (platform rule).
        args.append(name.lower())
        clauses.append(f"strpos(lower(name), ${len(args)}) > 0")
    if metadata:
        args.append(metadata)
        clauses.append(f"metadata @> ${len(args)}::jsonb")
    return " AND ".join(clauses), args


async def search(pg: PgPool, graph_ids: Sequence[str], *, graph_id: str | None = None,
                 name: str | None = None, metadata: dict[str, Any] | None = None,
                 limit: int = 10, offset: int = 0, sort_by: str | None = None,
                 sort_order: str | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """One page and the next offset (None on the last page); stable ties on the id."""
    where, args = _where(graph_ids, graph_id, name, metadata)
    column = SORT_SQL.get(sort_by or "created_at", "created_at")
    # Platform default: newest first; an explicit sort_by without order is descending too.
    direction = "ASC" if sort_order == "asc" else "DESC"
    args += [limit + 1, offset]
    rows = await pg.fetch(
        f"SELECT {_SELECT} FROM assistant WHERE {where} "
        f"ORDER BY {column} {direction}, assistant_id {direction} "
        f"LIMIT ${len(args) - 1} OFFSET ${len(args)}", *args)
    more = len(rows) > limit
    return [to_assistant(r) for r in rows[:limit]], (offset + limit if more else None)


async def count(pg: PgPool, graph_ids: Sequence[str], *, graph_id: str | None = None,
                name: str | None = None, metadata: dict[str, Any] | None = None) -> int:
    where, args = _where(graph_ids, graph_id, name, metadata)
    return int(await pg.fetchval(f"SELECT count(*) FROM assistant WHERE {where}", *args))


async def versions(pg: PgPool, assistant_id: str, *, metadata: dict[str, Any] | None,
                   limit: int, offset: int) -> list[dict[str, Any]]:
    """Newest first; NotFound only when the assistant itself does not exist."""
    async def _q(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        rows = await conn.fetch(
            f"SELECT {_VERSION_SELECT} FROM assistant_versions WHERE assistant_id = $1 "
            "AND ($2::jsonb IS NULL OR metadata @> $2::jsonb) "
            "ORDER BY version DESC LIMIT $3 OFFSET $4",
            assistant_id, metadata or None, limit, offset)
        if not rows and await conn.fetchval(
                "SELECT 1 FROM assistant WHERE assistant_id = $1", assistant_id) is None:
            raise not_found(assistant_id)
        return [dict(r) for r in rows]
    return [to_version(r) for r in await pg.run(_q)]
