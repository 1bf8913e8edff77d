"""Runs in PostgreSQL: creation with multitask rules, the claim, fenced finish, cancel.

Every multi-statement unit runs in one transaction on one connection and crosses the
bridge once. The thread row lock (``FOR NO KEY UPDATE``) serializes run creation and
claims per thread, so two claims of runs of one thread cannot both see "nothing running"
under MVCC (DESIGN §3); the partial unique index on running runs is the backstop.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec

from aegra.adapters.postgres.checkpoints import delete_run_checkpoints
from aegra.adapters.postgres.pool import PgPool
from aegra.domain.errors import Conflict, NotFound
from aegra.domain.ports import ClaimedRun, Outcome
from aegra.domain.runs import new_run_id, thread_status_after


class NewRun(msgspec.Struct, kw_only=True):
    thread_id: str | None  # None: stateless, a new thread is made
    assistant_id: str
    graph_id: str
    params: dict[str, Any]
    metadata: dict[str, Any] = {}
    multitask_strategy: str = "reject"
    if_not_exists: str = "reject"
    after_seconds: float = 0
    user_id: str | None = None
    stateless: bool = False
    cron_id: str | None = None
    run_id: str | None = None


class AssistantLookup(msgspec.Struct, kw_only=True):
    """Resolve the run's assistant inside the create transaction (one round trip and one
    transaction less than a lookup before it): ``build`` turns the assistant row into
    the run's execution parameters."""
    assistant_id: str  # canonical: a graph id already mapped to its default assistant
    graph_ids: list[str]  # only assistants of graphs this server has
    missing: Exception  # raised when there is no such assistant
    build: Any  # Callable[[dict[str, Any]], dict[str, Any]]


class Cancelled(msgspec.Struct, kw_only=True):
    running: list[str] = []  # still executing somewhere: signal their CancelScopes
    settled: list[str] = []  # were pending: already interrupted (or deleted) here
    action: str = "interrupt"


class Created(msgspec.Struct, kw_only=True):
    run: dict[str, Any]
    cancelled: Cancelled
    assistant: dict[str, Any] | None = None  # the assistant row read, for the cache


# The thread's next run to start: the oldest pending one (enqueue is FIFO).
NEXT_PENDING = """SELECT run_id FROM runs WHERE thread_id = $1 AND status = 'pending'
                  ORDER BY created_at, run_id LIMIT 1"""
# A thread with nothing left in flight is no longer busy.
FREE_THREAD = """UPDATE thread SET status = 'idle', updated_at = now()
                 WHERE thread_id = $1 AND status = 'busy' AND NOT EXISTS (
                   SELECT 1 FROM runs WHERE thread_id = $1
                     AND status IN ('pending', 'running'))"""

ASSISTANT_CACHE_SIZE = 1024

RUN_COLUMNS = """run_id, thread_id, assistant_id, status, multitask_strategy, metadata,
    execution_params, output, error, user_id, stateless, created_at, updated_at, attempt,
    cron_id"""


ASSISTANT_FOR_RUN = """SELECT assistant_id, graph_id, config, context, version, updated_at
                       FROM assistant WHERE assistant_id = $1 AND graph_id = ANY($2)"""


async def _create(conn: asyncpg.Connection, new: NewRun, lookup: AssistantLookup | None = None,
                  cached: dict[str, Any] | None = None) -> Created:
    """Create a run. With a cached assistant row, first the one-round-trip function
    (migration 0001), which refuses, having changed nothing, whenever the case needs more
    than the common path: then this transaction does it all."""
    run_id = new.run_id or new_run_id()
    if lookup is not None and cached is not None:
        row = await conn.fetchrow(
            f"""SELECT {RUN_COLUMNS} FROM aegra_create_run(
                    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)""",
            run_id, new.thread_id or str(uuid.uuid4()), cached["assistant_id"],
            cached["version"], cached["updated_at"], cached["graph_id"],
            new.stateless or new.if_not_exists == "create", new.cron_id,
            new.multitask_strategy, new.metadata, lookup.build(cached), new.user_id,
            new.stateless, float(new.after_seconds))
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
        thread_id = new.thread_id
        if thread_id is None:
            thread_id = str(uuid.uuid4())
        row = await conn.fetchrow(
            "SELECT thread_id FROM thread WHERE thread_id = $1 FOR NO KEY UPDATE", thread_id)
        if row is None:
            if not (new.stateless or new.if_not_exists == "create"):
                raise NotFound(f"Thread {thread_id} not found")
            await conn.execute(
                """INSERT INTO thread (thread_id, status, metadata, user_id)
                   VALUES ($1, 'busy', $2, $3)""",
                thread_id, {"graph_id": new.graph_id, "assistant_id": new.assistant_id},
                new.user_id)
        else:
            inflight = await conn.fetch(
                """SELECT run_id, status FROM runs
                   WHERE thread_id = $1 AND status IN ('pending', 'running')""", thread_id)
            if inflight and new.multitask_strategy == "reject":
                raise Conflict(
                    f"Thread {thread_id} is already running a task. Wait for it to finish or "
                    "choose a different multitask strategy.")
            if inflight and new.multitask_strategy in ("interrupt", "rollback"):
                action = new.multitask_strategy
                cancelled = await _request_cancel(conn, [r["run_id"] for r in inflight], action)
        await conn.execute(
            """UPDATE thread SET status = 'busy', updated_at = now(),
                   metadata = jsonb_build_object('graph_id', $2::text, 'assistant_id', $3::text)
                              || metadata
               WHERE thread_id = $1""",
            thread_id, new.graph_id, new.assistant_id)
        run = await conn.fetchrow(
            f"""INSERT INTO runs (run_id, thread_id, assistant_id, cron_id, status,
                   multitask_strategy, metadata, execution_params, user_id, stateless,
                   available_at)
               VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9,
                       now() + make_interval(secs => $10))
               RETURNING {RUN_COLUMNS}""",
            run_id, thread_id, new.assistant_id, new.cron_id, new.multitask_strategy,
            new.metadata, new.params, new.user_id, new.stateless, float(new.after_seconds))
    return Created(run=dict(run), cancelled=cancelled, assistant=assistant)


async def _request_cancel(conn: asyncpg.Connection, run_ids: list[str], action: str
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


async def _claim(conn: asyncpg.Connection, run_id: str, owner: str, lease_s: float
                 ) -> ClaimedRun | None:
    """One round trip: aegra_claim_run (migration 0001) locks the thread row, then claims
    the run only if it is the thread's oldest available pending run and nothing else
    runs on the thread."""
    row = await conn.fetchrow(
        """SELECT run_id, thread_id, assistant_id, attempt, execution_params, metadata,
                  stateless, user_id FROM aegra_claim_run($1, $2, $3)""",
        run_id, owner, float(lease_s))
    if row is None:
        return None
    return ClaimedRun(
        run_id=row["run_id"], thread_id=row["thread_id"], assistant_id=row["assistant_id"],
        attempt=row["attempt"], params=row["execution_params"], metadata=row["metadata"],
        stateless=row["stateless"], user_id=row["user_id"])


async def _finish(conn: asyncpg.Connection, claimed: ClaimedRun, owner: str, outcome: Outcome,
                  thread_values: Any, thread_interrupts: dict[str, Any]
                  ) -> tuple[bool, str | None]:
    """Fenced: writes only if this worker still holds the claim. -> (written, next run)."""
    if outcome.cancel_action == "rollback":
        return await _finish_rollback(conn, claimed, owner, outcome, thread_values,
                                      thread_interrupts)
    errored = outcome.status in ("error", "timeout")
    interrupted = outcome.interrupted and outcome.status == "success"
    row = await conn.fetchrow(
        """SELECT written, next_run FROM aegra_finish_run(
               $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)""",
        claimed.run_id, claimed.thread_id, owner, claimed.attempt, outcome.status,
        outcome.values, outcome.error, thread_values is not None, thread_values,
        thread_interrupts,
        thread_status_after(errored=errored, interrupted=interrupted, others_pending=True),
        thread_status_after(errored=errored, interrupted=interrupted, others_pending=False))
    return bool(row["written"]), row["next_run"]


async def _finish_rollback(conn: asyncpg.Connection, claimed: ClaimedRun, owner: str,
                           outcome: Outcome, thread_values: Any,
                           thread_interrupts: dict[str, Any]) -> tuple[bool, str | None]:
    """A run cancelled with ``rollback`` goes, with its checkpoints (fenced as well)."""
    async with conn.transaction():
        await conn.execute(
            "SELECT 1 FROM thread WHERE thread_id = $1 FOR NO KEY UPDATE", claimed.thread_id)
        written = await conn.fetchval(
            """DELETE FROM runs WHERE run_id = $1 AND claimed_by = $2 AND attempt = $3
               RETURNING run_id""", claimed.run_id, owner, claimed.attempt)
        if written is None:
            return False, None
        await delete_run_checkpoints(conn, claimed.thread_id, claimed.run_id)
        next_run = await conn.fetchval(NEXT_PENDING, claimed.thread_id)
        status = thread_status_after(errored=outcome.status in ("error", "timeout"),
                                     interrupted=False, others_pending=next_run is not None)
        await conn.execute(
            """UPDATE thread SET status = $2, interrupts = $3, error = $4, updated_at = now(),
                   "values" = CASE WHEN $5 THEN $6 ELSE "values" END,
                   state_updated_at = CASE WHEN $5 THEN now() ELSE state_updated_at END
               WHERE thread_id = $1""",
            claimed.thread_id, status, thread_interrupts, outcome.error,
            thread_values is not None, thread_values)
    return True, next_run


class PgRuns:
    """RunStore adapter for runs."""

    def __init__(self, pg: PgPool) -> None:
        self.pg = pg
        # Assistant rows runs were created with, by canonical id: the create function
        # checks version and updated_at, so a stale entry only costs the full path.
        self._assistants: dict[str, dict[str, Any]] = {}

    async def create(self, new: NewRun, lookup: AssistantLookup | None = None) -> Created:
        cached = self._assistants.get(lookup.assistant_id) if lookup is not None else None
        created = await self.pg.run(_create, new, lookup, cached)
        if lookup is not None and created.assistant is not None:
            if len(self._assistants) >= ASSISTANT_CACHE_SIZE:
                self._assistants.pop(next(iter(self._assistants)))
            self._assistants[lookup.assistant_id] = created.assistant
        return created

    async def claim(self, run_id: str, owner: str, lease_s: float) -> ClaimedRun | None:
        return await self.pg.run(_claim, run_id, owner, lease_s)

    async def finish(self, claimed: ClaimedRun, owner: str, outcome: Outcome,
                     thread_values: Any, thread_interrupts: dict[str, Any]
                     ) -> tuple[bool, str | None]:
        return await self.pg.run(_finish, claimed, owner, outcome, thread_values,
                                 thread_interrupts)

    async def release(self, claimed: ClaimedRun, owner: str) -> bool:
        """Hand a claimed run back to the queue (drain): pending, no retry spent."""
        done = await self.pg.fetchval(
            """UPDATE runs SET status = 'pending', claimed_by = NULL, lease_expires_at = NULL,
                   updated_at = now()
               WHERE run_id = $1 AND claimed_by = $2 AND attempt = $3 RETURNING run_id""",
            claimed.run_id, owner, claimed.attempt)
        return done is not None

    async def refresh_thread(self, thread_id: str, values: Any, interrupts: dict[str, Any],
                             paused: bool) -> None:
        """Cached values after a run stopped from outside; a thread already taken by its
        next run (busy) is left alone."""
        await self.pg.execute(
            """UPDATE thread SET "values" = $2, interrupts = $3, updated_at = now(),
                   state_updated_at = now(),
                   status = CASE WHEN status = 'idle' AND $4 THEN 'interrupted'
                                 ELSE status END
               WHERE thread_id = $1 AND status <> 'busy'""",
            thread_id, values, interrupts, paused)

    async def request_cancel(self, run_ids: list[str], action: str) -> Cancelled:
        async def _q(conn: asyncpg.Connection) -> Cancelled:
            async with conn.transaction():
                # Thread rows first, in order, as claims lock them (runs first deadlocked).
                threads = await conn.fetch(
                    """SELECT thread_id FROM thread WHERE thread_id IN (
                           SELECT thread_id FROM runs WHERE run_id = ANY($1))
                       ORDER BY thread_id FOR NO KEY UPDATE""", run_ids)
                result = await _request_cancel(conn, run_ids, action)
                # A thread whose only pending run was cancelled is free again.
                for t in threads:
                    await conn.execute(FREE_THREAD, t["thread_id"])
                return result
        return await self.pg.run(_q)

    async def get(self, run_id: str, thread_id: str | None = None) -> dict[str, Any]:
        row = await self.pg.fetchrow(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1"
            + (" AND thread_id = $2" if thread_id else ""),
            *((run_id, thread_id) if thread_id else (run_id,)))
        if row is None:
            raise NotFound(f"Run {run_id} not found")
        return row

    async def find(self, run_id: str) -> dict[str, Any] | None:
        return await self.pg.fetchrow(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1",
                                      run_id)

    async def list(self, thread_id: str, *, limit: int, offset: int,
                   status: str | None) -> list[dict[str, Any]]:
        return await self.pg.fetch(
            f"""SELECT {RUN_COLUMNS} FROM runs WHERE thread_id = $1
                AND ($2::text IS NULL OR status = $2)
                ORDER BY created_at DESC, run_id DESC LIMIT $3 OFFSET $4""",
            thread_id, status, limit, offset)

    async def inflight(self, *, thread_id: str | None = None, run_ids: list[str] | None = None,
                       status: str | None = None) -> list[str]:
        rows = await self.pg.fetch(
            """SELECT run_id FROM runs WHERE status IN ('pending', 'running')
               AND ($1::text IS NULL OR thread_id = $1)
               AND ($2::text[] IS NULL OR run_id = ANY($2))
               AND ($3::text IS NULL OR status = $3)""", thread_id, run_ids, status)
        return [r["run_id"] for r in rows]

    async def delete(self, thread_id: str, run_id: str) -> None:
        """Delete the row; a thread left with nothing in flight is no longer busy."""
        async def _q(conn: asyncpg.Connection) -> Any:
            async with conn.transaction():
                gone = await conn.fetchval(
                    "DELETE FROM runs WHERE run_id = $1 AND thread_id = $2 RETURNING run_id",
                    run_id, thread_id)
                await conn.execute(FREE_THREAD, thread_id)
                return gone
        if await self.pg.run(_q) is None:
            raise NotFound(f"Run {run_id} not found")

    async def next_pending(self, thread_id: str) -> str | None:
        return await self.pg.fetchval(NEXT_PENDING, thread_id)  # type: ignore[no-any-return]

    async def pending_ids(self, limit: int = 1000) -> list[str]:
        """Runs waiting to start, oldest first (startup recovery in single-instance mode)."""
        rows = await self.pg.fetch(
            """SELECT run_id FROM runs WHERE status = 'pending'
               ORDER BY available_at, created_at LIMIT $1""", limit)
        return [r["run_id"] for r in rows]
