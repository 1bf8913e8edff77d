"""The ``crons`` table: create (with its first run), read, update, delete, search, count,
and the ticker's claim -> create run -> advance transaction. ``CronStore``.

Every public method is one bridge crossing on one pooled connection. The scheduling maths
is not here: callers pass pure functions (``patch``, ``plan``) that run inside the
transaction on the locked row, so the row read and the row written are the same version.
``where`` is the caller's authorization filter on the cron's metadata, applied inside the
query: a cron it excludes is NotFound (or not counted), exactly like a missing one;
``thread_where`` (search, count) filters a thread-bound cron by its thread's metadata.

Runs are written by ``aegra.adapters.postgres.runs``: a thread-bound firing with
``create_run``, whose own ``conn.transaction()`` nests as a savepoint (a firing that
cannot create its run, thread busy under ``reject``, rolls back alone and the cron still
advances); the stateless firings of one pass together with ``create_stateless_runs``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from aegra.adapters.postgres.filters import thread_where as sql_thread_where
from aegra.adapters.postgres.filters import where as sql_where
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.run_create import create_run, create_stateless_runs
from aegra.domain.assistants import canonical_id, not_found
from aegra.domain.auth import Filter
from aegra.domain.crons import COLUMNS, SORTABLE, Fired, Firing, NewCron
from aegra.domain.errors import DomainError, NotFound, TooMany
from aegra.domain.run_rows import Created, NewRun

_SELECT = ", ".join(COLUMNS)
PATCHABLE = ("schedule", "timezone", "end_time", "enabled", "on_run_completed", "payload",
             "metadata", "next_run_date")

# Due, enabled crons, oldest occurrence first. SKIP LOCKED lets tickers on every instance
# share the work; a row another ticker advanced meanwhile is re-checked against its new
# next_run_date (READ COMMITTED re-evaluates locked rows), so an occurrence fires once.
_CLAIM = f"""
SELECT {", ".join("c." + c for c in COLUMNS)},
       a.graph_id, a.config AS assistant_config, a.context AS assistant_context,
       now() AS db_now
FROM crons c JOIN assistant a ON a.assistant_id = c.assistant_id
WHERE c.enabled AND c.next_run_date <= now()
ORDER BY c.next_run_date, c.cron_id
LIMIT $1
FOR UPDATE OF c SKIP LOCKED
"""

_ADVANCE = """
UPDATE crons SET next_run_date = u.next_run_date,
                 last_run_date = coalesce(u.fired_at, crons.last_run_date)
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[])
     AS u(cron_id, next_run_date, fired_at)
WHERE crons.cron_id = u.cron_id
"""

# How long the ticker may sleep: the earliest enabled occurrence (crons_due_idx).
_NEXT_DUE = """SELECT extract(epoch FROM min(next_run_date) - clock_timestamp())::float8
               FROM crons WHERE enabled"""

_ASSISTANT = """SELECT assistant_id, graph_id, config, context, metadata FROM assistant
                WHERE assistant_id = $1 AND ($2::text[] IS NULL OR graph_id = ANY($2))"""


async def _insert(conn: asyncpg.Connection, new: NewCron, first: NewRun | None,
                  max_per_user: int, assistant_where: Filter | None,
                  thread_where: Filter | None) -> tuple[dict[str, Any], Created | None]:
    async with conn.transaction():
        if max_per_user > 0:
            # Serialize creates per owner so two concurrent requests cannot both pass
            # the cap check.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('aegra.crons:' || coalesce($1, '')))",
                new.user_id)
            owned = await conn.fetchval(  # counted per identity (crons_user_idx)
                "SELECT count(*) FROM crons WHERE user_id = $1" if new.user_id is not None
                else "SELECT count(*) FROM crons WHERE user_id IS NULL",
                *([new.user_id] if new.user_id is not None else []))
            if owned >= max_per_user:
                raise TooMany(f"Cron limit reached: a user may own at most {max_per_user} "
                              "crons (CRON_MAX_PER_USER)")
        if assistant_where:  # the caller may read the assistant (checked, not locked)
            args: list[Any] = [new.assistant_id]
            pred = sql_where(assistant_where, "metadata", args)
            if await conn.fetchval(
                    f"SELECT 1 FROM assistant WHERE assistant_id = $1 AND {pred}",
                    *args) is None:
                raise not_found(new.assistant_id)
        if new.thread_id is not None:
            args = [new.thread_id]
            pred = sql_where(thread_where, "metadata", args)
            if await conn.fetchval(
                    f"SELECT 1 FROM thread WHERE thread_id = $1 AND {pred}", *args) is None:
                raise NotFound(f"Thread with ID '{new.thread_id}' not found")
        row = await conn.fetchrow(
            f"""INSERT INTO crons (cron_id, assistant_id, thread_id, user_id, schedule,
                   timezone, end_time, enabled, on_run_completed, payload, metadata,
                   next_run_date)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
               RETURNING {_SELECT}""",
            new.cron_id, new.assistant_id, new.thread_id, new.user_id, new.schedule,
            new.timezone, new.end_time, new.enabled, new.on_run_completed, new.payload,
            new.metadata, new.next_run_date)
        created = await create_run(conn, first) if first is not None else None
    return dict(row), created


async def _fire(conn: asyncpg.Connection, plan: Callable[[dict[str, Any]], Firing],
                limit: int) -> Fired:
    fired = Fired()
    async with conn.transaction():
        rows = await conn.fetch(_CLAIM, limit)
        fired.claimed = len(rows)
        ids, nexts, fired_at, stateless = [], [], [], []
        for record in rows:
            row = dict(record)
            firing = plan(row)
            if firing.run is None:
                fired.skipped.append((row["cron_id"], firing.why or "nothing to fire"))
            else:
                if firing.why:
                    fired.notes.append((row["cron_id"], firing.why))
                if firing.run.thread_id is None:
                    stateless.append(firing.run)
                else:  # a thread's own rules (busy thread, multitask strategy) apply
                    try:
                        fired.created.append(await create_run(conn, firing.run))
                    except DomainError as exc:
                        fired.skipped.append((row["cron_id"], exc.message))
            ids.append(row["cron_id"])
            nexts.append(firing.next_run_date)
            fired_at.append(firing.occurrence if firing.run is not None else None)
            if firing.next_run_date is not None and firing.next_run_date <= row["db_now"]:
                fired.behind = True
        if stateless:
            fired.created += await create_stateless_runs(conn, stateless)
        if ids:
            await conn.execute(_ADVANCE, ids, nexts, fired_at)
        fired.next_due_s = await conn.fetchval(_NEXT_DUE)
    return fired


class PgCrons:
    """``CronStore`` on PostgreSQL. ``graph_ids``: the graphs this server serves (an
    assistant of another graph is not found; a graph id names its default assistant)."""

    def __init__(self, pg: PgPool, graph_ids: list[str] | None = None) -> None:
        self.pg = pg
        self.graph_ids = graph_ids

    def _canonical(self, value: str) -> str:
        return canonical_id(self.graph_ids or (), value)

    async def assistant(self, value: str) -> dict[str, Any]:
        """The assistant ``value`` names (its id or its graph's id), with its metadata."""
        row = await self.pg.fetchrow(_ASSISTANT, self._canonical(value), self.graph_ids)
        if row is None:
            raise not_found(value)
        return row

    async def create(self, new: NewCron, first_run: NewRun | None, *, max_per_user: int,
                     assistant_where: Filter | None = None,
                     thread_where: Filter | None = None
                     ) -> tuple[dict[str, Any], Created | None]:
        """Insert the cron and, in the same transaction, its first run (when given)."""
        return await self.pg.run(_insert, new, first_run, max_per_user, assistant_where,
                                 thread_where)

    async def get(self, cron_id: str, *, where: Filter | None = None) -> dict[str, Any]:
        args: list[Any] = [cron_id]
        pred = sql_where(where, "metadata", args)
        row = await self.pg.fetchrow(
            f"SELECT {_SELECT} FROM crons WHERE cron_id = $1 AND {pred}", *args)
        if row is None:
            raise NotFound(f"Cron '{cron_id}' not found")
        return row

    async def update(self, cron_id: str, patch: Callable[[dict[str, Any]], dict[str, Any]],
                     *, where: Filter | None = None) -> dict[str, Any]:
        """Lock the row, let ``patch`` (pure) compute the new column values, write them."""
        async def _q(conn: asyncpg.Connection) -> dict[str, Any]:
            async with conn.transaction():
                args: list[Any] = [cron_id]
                pred = sql_where(where, "metadata", args)
                row = await conn.fetchrow(
                    f"SELECT {_SELECT} FROM crons WHERE cron_id = $1 AND {pred} FOR UPDATE",
                    *args)
                if row is None:
                    raise NotFound(f"Cron '{cron_id}' not found")
                changes = {k: v for k, v in patch(dict(row)).items() if k in PATCHABLE}
                sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(changes, start=2))
                updated = await conn.fetchrow(
                    f"""UPDATE crons SET {sets + ", " if sets else ""}updated_at = now()
                        WHERE cron_id = $1 RETURNING {_SELECT}""",
                    cron_id, *changes.values())
                return dict(updated)
        return await self.pg.run(_q)

    async def delete(self, cron_id: str, *, where: Filter | None = None) -> None:
        args: list[Any] = [cron_id]
        pred = sql_where(where, "metadata", args)
        gone = await self.pg.fetchval(
            f"DELETE FROM crons WHERE cron_id = $1 AND {pred} RETURNING cron_id", *args)
        if gone is None:
            raise NotFound(f"Cron '{cron_id}' not found")

    def _where(self, assistant_id: str | None, thread_id: str | None, enabled: bool | None,
               metadata: dict[str, Any] | None, where: Filter | None,
               thread_where: Filter | None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if assistant_id:
            assistant_id = self._canonical(assistant_id)
        for sql, value in (("assistant_id = $%d", assistant_id),
                           ("thread_id = $%d", thread_id), ("enabled = $%d", enabled),
                           ("metadata @> $%d::jsonb", metadata or None)):
            if value is not None:
                args.append(value)
                clauses.append(sql % len(args))
        if where:
            clauses.append(sql_where(where, "metadata", args))
        if thread_where:  # stateless crons have no thread to check
            clauses.append("(crons.thread_id IS NULL OR "
                           f"{sql_thread_where(thread_where, 'crons.thread_id', args)})")
        return " AND ".join(clauses) or "TRUE", args

    async def search(self, *, assistant_id: str | None, thread_id: str | None,
                     enabled: bool | None, metadata: dict[str, Any] | None, limit: int,
                     offset: int, sort_by: str, sort_order: str,
                     where: Filter | None = None, thread_where: Filter | None = None
                     ) -> list[dict[str, Any]]:
        if sort_by not in SORTABLE:
            raise ValueError(sort_by)
        pred, args = self._where(assistant_id, thread_id, enabled, metadata, where,
                                 thread_where)
        order = "ASC" if sort_order == "asc" else "DESC"
        n = len(args)
        return await self.pg.fetch(
            f"""SELECT {_SELECT} FROM crons WHERE {pred}
                ORDER BY {sort_by} {order}, cron_id {order}
                LIMIT ${n + 1} OFFSET ${n + 2}""", *args, limit, offset)

    async def count(self, *, assistant_id: str | None, thread_id: str | None,
                    enabled: bool | None, metadata: dict[str, Any] | None,
                    where: Filter | None = None, thread_where: Filter | None = None) -> int:
        pred, args = self._where(assistant_id, thread_id, enabled, metadata, where,
                                 thread_where)
        return int(await self.pg.fetchval(f"SELECT count(*) FROM crons WHERE {pred}", *args))

    async def fire_due(self, plan: Callable[[dict[str, Any]], Firing], limit: int) -> Fired:
        """Claim up to ``limit`` due crons; for each, ``plan`` (pure) decides the run and the
        next date; runs and advances commit together. Queue the runs after this returns."""
        return await self.pg.run(_fire, plan, limit)
