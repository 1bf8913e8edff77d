"""The ``crons`` table: create (with its first run), update, delete, search, count, and the
ticker's claim -> create run -> advance transaction (DESIGN §5).

Every public method is one bridge crossing on one pooled connection. The scheduling maths
is not here: callers pass pure functions (``patch``, ``plan``) that run inside the
transaction on the locked row, so the row read and the row written are the same version.
A thread-bound firing creates its run with ``runs._create``, whose own
``conn.transaction()`` nests as a savepoint: a firing that cannot create its run (thread
busy under ``reject``) rolls back alone and the cron still advances. Stateless firings of
one pass are inserted together, set-based (``_STATELESS``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import msgspec

from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.runs import RUN_COLUMNS, Cancelled, Created, NewRun
from aegra.adapters.postgres.runs import _create as create_run
from aegra.domain.errors import DomainError, NotFound, TooMany
from aegra.domain.runs import new_run_id

# Wire order of the platform's Cron object; doubles as the select whitelist.
COLUMNS = ("cron_id", "assistant_id", "thread_id", "user_id", "end_time", "schedule",
           "timezone", "payload", "next_run_date", "metadata", "on_run_completed", "enabled",
           "created_at", "updated_at")
_SELECT = ", ".join(COLUMNS)
# The only client strings that reach ORDER BY, and only through this whitelist.
SORTABLE = ("cron_id", "assistant_id", "thread_id", "created_at", "updated_at",
            "next_run_date", "end_time")
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

# Stateless firings of one pass, set-based: new threads and their runs in one statement.
# Per run this is what ``runs._create`` writes for a stateless run (a new thread, busy,
# tagged with graph and assistant; a pending run), without its six round trips: with
# graphs executing on the same event loop every await waits its turn, and a 1,000-cron
# burst made one at a time was late by tens of seconds (bench/README.md). The FK from
# runs to thread is checked at the end of the statement, after both inserts.
_STATELESS = f"""
WITH u AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::jsonb[], $8::jsonb[], $9::text[])
        AS u(run_id, thread_id, assistant_id, graph_id, cron_id, multitask_strategy,
             metadata, params, user_id)
), t AS (
    INSERT INTO thread (thread_id, status, metadata, user_id)
    SELECT thread_id, 'busy',
           jsonb_build_object('graph_id', graph_id, 'assistant_id', assistant_id), user_id
    FROM u
)
INSERT INTO runs (run_id, thread_id, assistant_id, cron_id, status, multitask_strategy,
                  metadata, execution_params, user_id, stateless, available_at)
SELECT run_id, thread_id, assistant_id, cron_id, 'pending', multitask_strategy, metadata,
       params, user_id, true, now()
FROM u
RETURNING {RUN_COLUMNS}
"""

# How long the ticker may sleep: the earliest enabled occurrence (crons_due_idx).
_NEXT_DUE = """SELECT extract(epoch FROM min(next_run_date) - clock_timestamp())::float8
               FROM crons WHERE enabled"""


class NewCron(msgspec.Struct, kw_only=True):
    cron_id: str
    assistant_id: str
    thread_id: str | None
    user_id: str | None
    schedule: str
    timezone: str | None
    end_time: dt.datetime | None
    enabled: bool
    on_run_completed: str | None
    payload: dict[str, Any]
    metadata: dict[str, Any]
    next_run_date: dt.datetime | None


class Firing(msgspec.Struct, kw_only=True):
    """What the ticker decided for one claimed cron (see ``supervisor/cron.py``)."""

    run: NewRun | None  # None: nothing to fire (end_time passed)
    next_run_date: dt.datetime | None  # None: the schedule is over
    occurrence: dt.datetime


class Fired(msgspec.Struct, kw_only=True):
    claimed: int = 0
    created: list[Created] = []
    skipped: list[tuple[str, str]] = []  # (cron_id, why) occurrences that made no run
    behind: bool = False  # an advanced cron is already due again: tick again at once
    next_due_s: float | None = None  # seconds until the earliest enabled cron is due


def _iso(value: Any) -> Any:
    return value.astimezone(dt.UTC).isoformat() if isinstance(value, dt.datetime) else value


def to_cron(row: dict[str, Any]) -> dict[str, Any]:
    return {key: _iso(row[key]) for key in COLUMNS if key in row}


def _owner(user_id: str | None, arg: int) -> str:
    """Ownership filter: crons are visible to their owner; no identity means no auth."""
    return "TRUE" if user_id is None else f"user_id = ${arg}"


async def _insert(conn: asyncpg.Connection, new: NewCron, first: NewRun | None,
                  max_per_user: int) -> tuple[dict[str, Any], Created | None]:
    async with conn.transaction():
        if max_per_user > 0:
            # Serialize creates per owner so two concurrent requests cannot both pass
            # the cap check.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('aegra.crons:' || coalesce($1, '')))",
                new.user_id)
            owned = await conn.fetchval(
                "SELECT count(*) FROM crons WHERE user_id = $1" if new.user_id is not None
                else "SELECT count(*) FROM crons WHERE user_id IS NULL",
                *([new.user_id] if new.user_id is not None else []))
            if owned >= max_per_user:
                raise TooMany(f"Cron limit reached: a user may own at most {max_per_user} "
                              "crons (CRON_MAX_PER_USER)")
        if new.thread_id is not None:
            found = await conn.fetchval(
                f"SELECT 1 FROM thread WHERE thread_id = $1 AND {_owner(new.user_id, 2)}",
                *([new.thread_id] if new.user_id is None else [new.thread_id, new.user_id]))
            if found is None:
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
                fired.skipped.append((row["cron_id"], "past end_time"))
            elif firing.run.thread_id is None:
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
            fired.created += await _create_stateless(conn, stateless)
        if ids:
            await conn.execute(_ADVANCE, ids, nexts, fired_at)
        fired.next_due_s = await conn.fetchval(_NEXT_DUE)
    return fired


async def _create_stateless(conn: asyncpg.Connection, runs: list[NewRun]) -> list[Created]:
    made = await conn.fetch(
        _STATELESS, [r.run_id or new_run_id() for r in runs],
        [str(uuid.uuid4()) for _ in runs], [r.assistant_id for r in runs],
        [r.graph_id for r in runs], [r.cron_id for r in runs],
        [r.multitask_strategy for r in runs], [r.metadata for r in runs],
        [r.params for r in runs], [r.user_id for r in runs])
    return [Created(run=dict(m), cancelled=Cancelled()) for m in made]


class PgCrons:
    def __init__(self, pg: PgPool) -> None:
        self.pg = pg

    async def create(self, new: NewCron, first_run: NewRun | None, *, max_per_user: int
                     ) -> tuple[dict[str, Any], Created | None]:
        """Insert the cron and, in the same transaction, its first run (when given)."""
        return await self.pg.run(_insert, new, first_run, max_per_user)

    async def update(self, cron_id: str, user_id: str | None,
                     patch: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """Lock the row, let ``patch`` (pure) compute the new column values, write them."""
        async def _q(conn: asyncpg.Connection) -> dict[str, Any]:
            async with conn.transaction():
                row = await conn.fetchrow(
                    f"SELECT {_SELECT} FROM crons WHERE cron_id = $1 AND {_owner(user_id, 2)} "
                    "FOR UPDATE", *([cron_id] if user_id is None else [cron_id, user_id]))
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

    async def delete(self, cron_id: str, user_id: str | None) -> None:
        gone = await self.pg.fetchval(
            f"DELETE FROM crons WHERE cron_id = $1 AND {_owner(user_id, 2)} RETURNING cron_id",
            *([cron_id] if user_id is None else [cron_id, user_id]))
        if gone is None:
            raise NotFound(f"Cron '{cron_id}' not found")

    @staticmethod
    def _where(user_id: str | None, assistant_id: str | None, thread_id: str | None,
               enabled: bool | None, metadata: dict[str, Any] | None
               ) -> tuple[str, list[Any]]:
        clauses, args = [], []
        for sql, value in (("user_id = $%d", user_id), ("assistant_id = $%d", assistant_id),
                           ("thread_id = $%d", thread_id), ("enabled = $%d", enabled),
                           ("metadata @> $%d::jsonb", metadata or None)):
            if value is not None:
                args.append(value)
                clauses.append(sql % len(args))
        return " AND ".join(clauses) or "TRUE", args

    async def search(self, *, user_id: str | None, assistant_id: str | None,
                     thread_id: str | None, enabled: bool | None,
                     metadata: dict[str, Any] | None, limit: int, offset: int,
                     sort_by: str, sort_order: str) -> list[dict[str, Any]]:
        if sort_by not in SORTABLE:
            raise ValueError(sort_by)
        where, args = self._where(user_id, assistant_id, thread_id, enabled, metadata)
        order = "ASC" if sort_order == "asc" else "DESC"
        n = len(args)
        return await self.pg.fetch(
            f"""SELECT {_SELECT} FROM crons WHERE {where}
                ORDER BY {sort_by} {order}, cron_id {order}
                LIMIT ${n + 1} OFFSET ${n + 2}""", *args, limit, offset)

    async def count(self, *, user_id: str | None, assistant_id: str | None,
                    thread_id: str | None, enabled: bool | None,
                    metadata: dict[str, Any] | None) -> int:
        where, args = self._where(user_id, assistant_id, thread_id, enabled, metadata)
        return int(await self.pg.fetchval(f"SELECT count(*) FROM crons WHERE {where}", *args))

    async def fire_due(self, plan: Callable[[dict[str, Any]], Firing], limit: int) -> Fired:
        """Claim up to ``limit`` due crons; for each, ``plan`` (pure) decides the run and the
        next date; runs and advances commit together. Queue the runs after this returns."""
        return await self.pg.run(_fire, plan, limit)
