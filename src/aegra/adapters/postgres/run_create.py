"""Creating runs in PostgreSQL: the one row builder's three ways in (docs/architecture.md,
One path for every run).

``create_run``: the plpgsql fast path (migration 0001's ``aegra_create_run``, one round
trip) when the assistant row is cached and the case is common, else one Python
transaction that applies the multitask strategy. ``create_stateless_runs``: a cron
tick's stateless firings in one statement. ``create_guarded`` / ``create_as``: the same
for an authorized caller, with the caller's filters inside the statement. All write
``domain.run_rows.run_row(new)``; ``tests/integration/test_run_row_paths.py`` compares.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from aegra.adapters.postgres import filters
from aegra.domain.auth import Filter
from aegra.domain.errors import Conflict, NotFound
from aegra.domain.ports import AssistantLookup
from aegra.domain.run_rows import Cancelled, Created, NewRun, RunRow, run_row
from aegra.domain.runs import new_run_id

RUN_COLUMNS = """run_id, thread_id, assistant_id, status, multitask_strategy, metadata,
    execution_params, output, error, user_id, stateless, created_at, updated_at, attempt,
    cron_id"""


ASSISTANT_FOR_RUN = """SELECT assistant_id, graph_id, config, context, version, updated_at
                       FROM assistant WHERE assistant_id = $1 AND graph_id = ANY($2)"""


async def create_run(conn: asyncpg.Connection, new: NewRun,
                     lookup: AssistantLookup | None = None,
                     cached: dict[str, Any] | None = None) -> Created:
    """Create a run (on ``conn``; inside a caller's transaction this nests as a savepoint).

    With a cached assistant row, first the one-round-trip function (migration 0001),
    which refuses, having changed nothing, whenever the case needs more than the common
    path: then this transaction does it all. Both write ``run_row(new)``.
    """
    new = msgspec.structs.replace(new, run_id=new.run_id or new_run_id())
    if lookup is not None and cached is not None:
        r = run_row(msgspec.structs.replace(
            new, assistant_id=cached["assistant_id"], graph_id=cached["graph_id"],
            params=lookup.build(cached)))
        row = await conn.fetchrow(
            f"""SELECT {RUN_COLUMNS} FROM aegra_create_run(
                    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)""",
            r.run_id, r.thread_id, r.assistant_id, cached["version"], cached["updated_at"],
            r.graph_id, new.stateless or new.if_not_exists == "create", r.cron_id,
            r.multitask_strategy, r.metadata, r.execution_params, r.user_id, r.stateless,
            r.after_s)
        if row is not None:
            return Created(run=dict(row), cancelled=Cancelled())
    cancelled = Cancelled()
    assistant = None
    async with conn.transaction():
        if lookup is not None:
            assistant = await conn.fetchrow(ASSISTANT_FOR_RUN, lookup.assistant_id,
                                            lookup.graph_ids)
            if assistant is None:
                raise lookup.missing
            assistant = dict(assistant)
            new = msgspec.structs.replace(
                new, assistant_id=assistant["assistant_id"], graph_id=assistant["graph_id"],
                params=lookup.build(assistant))
        r = run_row(new)
        row = await conn.fetchrow(
            "SELECT thread_id FROM thread WHERE thread_id = $1 FOR NO KEY UPDATE", r.thread_id)
        if row is None:
            if not (new.stateless or new.if_not_exists == "create"):
                raise NotFound(f"Thread {r.thread_id} not found")
            await conn.execute(
                """INSERT INTO thread (thread_id, status, metadata, user_id)
                   VALUES ($1, 'busy', $2, $3)""", r.thread_id, r.thread_metadata, r.user_id)
        else:
            inflight = await conn.fetch(
                """SELECT run_id, status FROM runs
                   WHERE thread_id = $1 AND status IN ('pending', 'running')""", r.thread_id)
            if inflight and new.multitask_strategy == "reject":
                raise Conflict(
                    f"Thread {r.thread_id} is already running a task. Wait for it to finish "
                    "or choose a different multitask strategy.")
            if inflight and new.multitask_strategy in ("interrupt", "rollback"):
                action = new.multitask_strategy
                cancelled = await request_cancel(conn, [f["run_id"] for f in inflight], action)
        await conn.execute(
            """UPDATE thread SET status = 'busy', updated_at = now(),
                   metadata = $2::jsonb || metadata
               WHERE thread_id = $1""", r.thread_id, r.thread_metadata)
        run = await _insert_run(conn, r)
    return Created(run=dict(run), cancelled=cancelled, assistant=assistant)


async def _insert_run(conn: asyncpg.Connection, r: RunRow) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""INSERT INTO runs (run_id, thread_id, assistant_id, cron_id, status,
               multitask_strategy, metadata, execution_params, user_id, stateless,
               available_at)
           VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9,
                   now() + make_interval(secs => $10))
           RETURNING {RUN_COLUMNS}""",
        r.run_id, r.thread_id, r.assistant_id, r.cron_id, r.multitask_strategy, r.metadata,
        r.execution_params, r.user_id, r.stateless, r.after_s)


# Many stateless runs in one statement: their new threads and their runs, set-based.
# Per run this writes what ``create_run`` writes for a stateless run (a new busy thread,
# tagged; a pending run), without its round trips: the cron ticker makes a pass's
# stateless firings with it (with graphs executing on the same event loop every await
# waits its turn, and a 1,000-cron burst made one at a time was late by tens of seconds:
# bench/README.md). The FK from runs to thread is checked at the end of the statement.
_MANY_STATELESS = f"""
WITH u AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::jsonb[], $7::jsonb[], $8::text[], $9::boolean[],
                         $10::float8[], $11::jsonb[])
        AS u(run_id, thread_id, assistant_id, cron_id, multitask_strategy, metadata,
             params, user_id, stateless, after_s, thread_metadata)
), t AS (
    INSERT INTO thread (thread_id, status, metadata, user_id)
    SELECT thread_id, 'busy', thread_metadata, user_id FROM u
)
INSERT INTO runs (run_id, thread_id, assistant_id, cron_id, status, multitask_strategy,
                  metadata, execution_params, user_id, stateless, available_at)
SELECT run_id, thread_id, assistant_id, cron_id, 'pending', multitask_strategy, metadata,
       params, user_id, stateless, now() + make_interval(secs => after_s)
FROM u
RETURNING {RUN_COLUMNS}
"""


async def create_stateless_runs(conn: asyncpg.Connection, news: list[NewRun]
                                ) -> list[Created]:
    """Create stateless runs (each on a new thread) in one statement; no multitask rules
    apply, as nothing else runs on a thread made for the run."""
    rows = [run_row(msgspec.structs.replace(n, thread_id=None)) for n in news]
    made = await conn.fetch(
        _MANY_STATELESS, [r.run_id for r in rows], [r.thread_id for r in rows],
        [r.assistant_id for r in rows], [r.cron_id for r in rows],
        [r.multitask_strategy for r in rows], [r.metadata for r in rows],
        [r.execution_params for r in rows], [r.user_id for r in rows],
        [r.stateless for r in rows], [r.after_s for r in rows],
        [r.thread_metadata for r in rows])
    return [Created(run=dict(m), cancelled=Cancelled()) for m in made]


async def request_cancel(conn: asyncpg.Connection, run_ids: list[str], action: str
                          ) -> Cancelled:
    """Pending runs end (or vanish) now; running ones get a persisted cancel request."""
    if action == "rollback":
        settled = await conn.fetch(
            "DELETE FROM runs WHERE run_id = ANY($1) AND status = 'pending' RETURNING run_id",
            run_ids)
    else:
        settled = await conn.fetch(
            """UPDATE runs SET status = 'interrupted', updated_at = now(), ended_at = now(),
                   cancel_action = 'interrupt', cancel_requested_at = now()
               WHERE run_id = ANY($1) AND status = 'pending' RETURNING run_id""", run_ids)
    running = await conn.fetch(
        """UPDATE runs SET cancel_action = $2, cancel_requested_at = now()
           WHERE run_id = ANY($1) AND status = 'running' RETURNING run_id""", run_ids, action)
    return Cancelled(running=[r["run_id"] for r in running],
                     settled=[r["run_id"] for r in settled], action=action)


# For a caller's run: is the assistant a system one (anyone may run it), and its row.
ASSISTANT_WITH_METADATA = """SELECT assistant_id, graph_id, config, context, version,
                                    updated_at, metadata
                             FROM assistant WHERE assistant_id = $1 AND graph_id = ANY($2)"""
SYSTEM = {"created_by": "system"}


async def create_guarded(conn: asyncpg.Connection, new: NewRun, lookup: AssistantLookup,
                         cached: dict[str, Any], thread_filter: Filter | None,
                         assistant_filter: Filter | None) -> Created | None:
    """The one-round-trip path for an authorized caller's run on an existing thread: the
    filters guard ``aegra_create_run`` in the same statement. The function's first
    argument reads the guard row (LATERAL), so with no guard row (a filter failed) it is
    never called. None: refused, for a reason the full path sorts out (and reports)."""
    r = run_row(msgspec.structs.replace(
        new, assistant_id=cached["assistant_id"], graph_id=cached["graph_id"],
        params=lookup.build(cached)))
    args: list[Any] = [
        r.run_id, r.thread_id, r.assistant_id, cached["version"], cached["updated_at"],
        r.graph_id, False, r.cron_id, r.multitask_strategy, r.metadata, r.execution_params,
        r.user_id, r.stateless, r.after_s, SYSTEM]
    thread_ok = filters.where(thread_filter, "t.metadata", args)
    assistant_ok = filters.where(assistant_filter, "a.metadata", args)
    row = await conn.fetchrow(
        f"""SELECT {RUN_COLUMNS} FROM (
                SELECT '' AS k WHERE EXISTS (SELECT 1 FROM thread t
                                             WHERE t.thread_id = $2 AND {thread_ok})
                  AND EXISTS (SELECT 1 FROM assistant a WHERE a.assistant_id = $3
                              AND (a.metadata @> $15::jsonb OR {assistant_ok}))) guard
            CROSS JOIN LATERAL aegra_create_run(
                $1 || guard.k, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)""",
        *args)
    return Created(run=dict(row), cancelled=Cancelled()) if row is not None else None


async def create_as(conn: asyncpg.Connection, new: NewRun, lookup: AssistantLookup,
                     cached: dict[str, Any] | None, thread_filter: Filter | None,
                     assistant_filter: Filter | None,
                     thread_metadata: dict[str, Any] | None) -> Created:
    """``create_run`` inside one transaction with the caller's checks around it."""
    async with conn.transaction():
        if assistant_filter is not None:
            args: list[Any] = [lookup.assistant_id, lookup.graph_ids, SYSTEM]
            visible = filters.where(assistant_filter, "metadata", args)
            allowed = await conn.fetchval(
                f"""SELECT COALESCE(metadata @> $3::jsonb OR {visible}, false) FROM assistant
                    WHERE assistant_id = $1 AND graph_id = ANY($2)""", *args)
            if allowed is False:
                raise lookup.missing
        fresh = new.thread_id is None
        if new.thread_id is not None:
            # The thread row lock create_run takes anyway, taken first: the metadata the
            # filter saw cannot change before the run is in.
            args = [new.thread_id]
            visible = filters.where(thread_filter, "metadata", args)
            seen = await conn.fetchrow(
                f"""SELECT COALESCE({visible}, false) AS ok FROM thread
                    WHERE thread_id = $1 FOR NO KEY UPDATE""", *args)
            if seen is not None and not seen["ok"]:
                raise NotFound(f"Thread {new.thread_id} not found")
            fresh = seen is None
        created = await create_run(conn, new, lookup, cached)
        if fresh and thread_metadata:
            await conn.execute("UPDATE thread SET metadata = metadata || $2::jsonb "
                               "WHERE thread_id = $1", created.run["thread_id"], thread_metadata)
    return created


