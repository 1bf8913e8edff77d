"""Runs in PostgreSQL: the claim, fenced finish, cancel and the reads (creation, with its
multitask rules, is ``run_create.py``).

Every multi-statement unit runs in one transaction on one connection and crosses the
bridge once. The thread row lock (``FOR NO KEY UPDATE``) serializes run creation and
claims per thread, so two claims of runs of one thread cannot both see "nothing running"
under MVCC (docs/architecture.md, One path for every run); the partial unique index on
running runs is the backstop.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import asyncpg

from aegra.adapters.postgres import filters
from aegra.adapters.postgres.checkpoints import delete_run_checkpoints
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.run_create import (
    ASSISTANT_WITH_METADATA,
    RUN_COLUMNS,
    create_as,
    create_guarded,
    create_run,
    request_cancel,
)
from aegra.adapters.postgres.webhooks import insert_delivery
from aegra.domain.auth import Filter
from aegra.domain.errors import NotFound
from aegra.domain.ports import AssistantLookup as AssistantLookup  # re-exported
from aegra.domain.ports import ClaimedRun, Outcome
from aegra.domain.run_rows import Cancelled as Cancelled  # re-exported for callers
from aegra.domain.run_rows import Created as Created
from aegra.domain.run_rows import NewRun as NewRun
from aegra.domain.runs import thread_status_after

# The thread's next run to start: the oldest pending one (enqueue is FIFO).
NEXT_PENDING = """SELECT run_id FROM runs WHERE thread_id = $1 AND status = 'pending'
                  ORDER BY created_at, run_id LIMIT 1"""
# A thread with nothing left in flight is no longer busy.
FREE_THREAD = """UPDATE thread SET status = 'idle', updated_at = now()
                 WHERE thread_id = $1 AND status = 'busy' AND NOT EXISTS (
                   SELECT 1 FROM runs WHERE thread_id = $1
                     AND status IN ('pending', 'running'))"""

ASSISTANT_CACHE_SIZE = 1024

async def _claim(conn: asyncpg.Connection, run_id: str, owner: str, lease_s: float
                 ) -> ClaimedRun | None:
    """One round trip: aegra_claim_run (migration 0001) locks the thread row, then claims
    the run only if it is the thread's oldest available pending run and nothing else
    runs on the thread."""
    row = await conn.fetchrow(
        """SELECT run_id, thread_id, assistant_id, attempt, execution_params, metadata,
                  stateless, user_id,
                  extract(epoch FROM started_at - available_at)::float8 AS wait_s
             FROM aegra_claim_run($1, $2, $3)""",
        run_id, owner, float(lease_s))
    if row is None:
        return None
    return ClaimedRun(
        run_id=row["run_id"], thread_id=row["thread_id"], assistant_id=row["assistant_id"],
        attempt=row["attempt"], params=row["execution_params"], metadata=row["metadata"],
        stateless=row["stateless"], user_id=row["user_id"], queue_wait_s=row["wait_s"])


async def _finish_with_webhook(conn: asyncpg.Connection, claimed: ClaimedRun, owner: str,
                               outcome: Outcome, thread_values: object,
                               thread_interrupts: dict[str, Any]) -> tuple[bool, str | None]:
    """The final status and the webhook delivery commit together (issue 13): a crash
    between the two cannot lose the callback."""
    async with conn.transaction():
        written, next_run = await _finish(conn, claimed, owner, outcome, thread_values,
                                          thread_interrupts)
        if written:
            await insert_delivery(conn, claimed.run_id)
    return written, next_run


async def _finish(conn: asyncpg.Connection, claimed: ClaimedRun, owner: str, outcome: Outcome,
                  thread_values: object, thread_interrupts: dict[str, Any]
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
                           outcome: Outcome, thread_values: object,
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


ASSISTANT_META_TTL_S = 5.0


class PgRuns:
    """RunStore adapter for runs."""

    def __init__(self, pg: PgPool, *, outbox: bool = False) -> None:
        self.pg = pg
        # Write a webhook delivery with the final status of runs that name one (off
        # under http.disable_webhooks).
        self.outbox = outbox
        # Assistant rows runs were created with, by canonical id: the create function
        # checks version and updated_at, so a stale entry only costs the full path.
        self._assistants: dict[str, dict[str, Any]] = {}
        self._assistant_meta: dict[str, tuple[float, dict[str, Any]]] = {}

    async def create(self, new: NewRun, lookup: AssistantLookup | None = None) -> Created:
        cached = self._assistants.get(lookup.assistant_id) if lookup is not None else None
        created = await self.pg.run(create_run, new, lookup, cached)
        if lookup is not None and created.assistant is not None:
            if len(self._assistants) >= ASSISTANT_CACHE_SIZE:
                self._assistants.pop(next(iter(self._assistants)))
            self._assistants[lookup.assistant_id] = created.assistant
        return created

    async def claim(self, run_id: str, owner: str, lease_s: float) -> ClaimedRun | None:
        return await self.pg.run(_claim, run_id, owner, lease_s)

    async def finish(self, claimed: ClaimedRun, owner: str, outcome: Outcome,
                     thread_values: object, thread_interrupts: dict[str, Any]
                     ) -> tuple[bool, str | None]:
        hook = (self.outbox and outcome.cancel_action != "rollback"
                and bool(claimed.params.get("webhook")))
        return await self.pg.run(_finish_with_webhook if hook else _finish, claimed, owner,
                                 outcome, thread_values, thread_interrupts)

    async def release(self, claimed: ClaimedRun, owner: str) -> bool:
        """Hand a claimed run back to the queue (drain): pending, no retry spent."""
        done = await self.pg.fetchval(
            """UPDATE runs SET status = 'pending', claimed_by = NULL, lease_expires_at = NULL,
                   updated_at = now()
               WHERE run_id = $1 AND claimed_by = $2 AND attempt = $3 RETURNING run_id""",
            claimed.run_id, owner, claimed.attempt)
        return done is not None

    async def refresh_thread(self, thread_id: str, values: object,
                             interrupts: dict[str, Any], paused: bool) -> None:
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
                result = await request_cancel(conn, run_ids, action)
                # A thread whose only pending run was cancelled is free again.
                for t in threads:
                    await conn.execute(FREE_THREAD, t["thread_id"])
                return result
        return await self.pg.run(_q)

    # -- reads and bulk operations for callers: ``where`` is the caller's authorization
    # filter on the parent thread's metadata, applied inside the query (None: no predicate).
    async def get(self, run_id: str, thread_id: str | None = None, *,
                  where: Filter | None = None) -> dict[str, Any]:
        row = await self.find(run_id, thread_id, where=where)
        if row is None:
            raise NotFound(f"Run {run_id} not found")
        return row

    async def find(self, run_id: str, thread_id: str | None = None, *,
                   where: Filter | None = None) -> dict[str, Any] | None:
        args: list[Any] = [run_id]
        sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1"
        if thread_id:
            args.append(thread_id)
            sql += " AND thread_id = $2"
        if where:
            sql += " AND " + filters.thread_where(where, "runs.thread_id", args)
        return await self.pg.fetchrow(sql, *args)

    async def inflight(self, *, thread_id: str | None = None, run_ids: list[str] | None = None,
                       status: str | None = None, where: Filter | None = None) -> list[str]:
        """Pending/running runs matching every given criterion (bulk cancel)."""
        args: list[Any] = [thread_id, run_ids, status]
        visible = filters.thread_where(where, "runs.thread_id", args) if where else "TRUE"
        rows = await self.pg.fetch(
            f"""SELECT run_id FROM runs WHERE status IN ('pending', 'running')
               AND ($1::text IS NULL OR thread_id = $1)
               AND ($2::text[] IS NULL OR run_id = ANY($2))
               AND ($3::text IS NULL OR status = $3) AND {visible}""", *args)
        return [r["run_id"] for r in rows]

    async def delete(self, thread_id: str, run_id: str, *, where: Filter | None = None
                     ) -> None:
        """Delete the row; a thread left with nothing in flight is no longer busy."""
        args: list[Any] = [run_id, thread_id]
        visible = filters.thread_where(where, "runs.thread_id", args) if where else "TRUE"

        async def _q(conn: asyncpg.Connection) -> str | None:
            async with conn.transaction():
                gone: str | None = await conn.fetchval(
                    f"""DELETE FROM runs WHERE run_id = $1 AND thread_id = $2 AND {visible}
                        RETURNING run_id""", *args)
                await conn.execute(FREE_THREAD, thread_id)
                return gone
        if await self.pg.run(_q) is None:
            raise NotFound(f"Run {run_id} not found")

    async def thread_visible(self, thread_id: str, *, where: Filter | None = None) -> bool:
        """Does the thread exist (and pass ``where``)?"""
        args: list[Any] = [thread_id]
        visible = filters.where(where, "metadata", args)
        found = await self.pg.fetchval(
            f"SELECT 1 FROM thread WHERE thread_id = $1 AND {visible}", *args)
        return found is not None

    async def stream_start(self, thread_id: str, *, where: Filter | None = None
                           ) -> datetime:
        """The database's now() for a thread-level join stream (runs created from then on
        are followed); NotFound when the thread does not exist or ``where`` hides it."""
        args: list[Any] = [thread_id]
        visible = filters.where(where, "metadata", args)
        row = await self.pg.fetchrow(
            f"SELECT now() AS since FROM thread WHERE thread_id = $1 AND {visible}", *args)
        if row is None:
            raise NotFound(f"Thread {thread_id} not found")
        since: datetime = row["since"]
        return since

    async def next_runs(self, thread_id: str, after_created: datetime | None,
                        since: datetime) -> list[dict[str, Any]]:
        """Runs a thread-level stream follows next: in flight, or created since the client
        connected (a run may start and finish between two looks; its replay buffer still
        has every event), after ``after_created``, oldest first."""
        return await self.pg.fetch(
            """SELECT run_id, created_at, status FROM runs WHERE thread_id = $1
               AND (status IN ('pending', 'running') OR created_at >= $3)
               AND ($2::timestamptz IS NULL OR created_at > $2)
               ORDER BY created_at, run_id""", thread_id, after_created, since)

    async def assistant(self, lookup: AssistantLookup) -> dict[str, Any]:
        """The assistant a run names, with its metadata (is it a system assistant?).

        Read at most every ``ASSISTANT_META_TTL_S`` per assistant: it only decides which
        handler runs (system assistants skip ``assistants.read``); the filter itself is
        checked against the row inside the create statement."""
        now = time.monotonic()
        hit = self._assistant_meta.get(lookup.assistant_id)
        if hit is not None and now - hit[0] < ASSISTANT_META_TTL_S:
            return hit[1]
        row = await self.pg.fetchrow(ASSISTANT_WITH_METADATA, lookup.assistant_id,
                                     lookup.graph_ids)
        if row is None:
            self._assistant_meta.pop(lookup.assistant_id, None)
            raise lookup.missing
        if len(self._assistant_meta) >= ASSISTANT_CACHE_SIZE:
            self._assistant_meta.pop(next(iter(self._assistant_meta)))
        self._assistant_meta[lookup.assistant_id] = (now, row)
        return row

    async def create_as(self, new: NewRun, lookup: AssistantLookup, *,
                        thread_filter: Filter | None = None,
                        assistant_filter: Filter | None = None,
                        thread_metadata: dict[str, Any] | None = None) -> Created:
        """``create`` for an authorized caller, in one transaction: an existing thread must
        pass ``thread_filter`` (else NotFound, as if it did not exist); a user assistant
        must pass ``assistant_filter`` (system assistants always do); a thread made for
        the run gets ``thread_metadata`` over its own (the caller's ownership stamp). All
        None: exactly ``create``."""
        if thread_filter is None and assistant_filter is None and not thread_metadata:
            return await self.create(new, lookup)
        cached = self._assistants.get(lookup.assistant_id)
        if (cached is not None and new.thread_id is not None and not new.stateless
                and new.if_not_exists != "create"):
            guarded = await self.pg.run(create_guarded, new, lookup, cached, thread_filter,
                                        assistant_filter)
            if guarded is not None:
                return guarded
        created = await self.pg.run(create_as, new, lookup, cached, thread_filter,
                                    assistant_filter, thread_metadata)
        if created.assistant is not None:
            if len(self._assistants) >= ASSISTANT_CACHE_SIZE:
                self._assistants.pop(next(iter(self._assistants)))
            self._assistants[lookup.assistant_id] = created.assistant
        return created

    async def next_pending(self, thread_id: str) -> str | None:
        return await self.pg.fetchval(NEXT_PENDING, thread_id)  # type: ignore[no-any-return]

    async def pending_ids(self, limit: int = 1000) -> list[str]:
        """Runs waiting to start, oldest first (startup recovery in single-instance mode)."""
        rows = await self.pg.fetch(
            """SELECT run_id FROM runs WHERE status = 'pending'
               ORDER BY available_at, created_at LIMIT $1""", limit)
        return [r["run_id"] for r in rows]

    # Last: below it, ``list`` in an annotation would name this method.
    async def list(self, thread_id: str, *, limit: int, offset: int,
                   status: str | None, where: Filter | None = None) -> list[dict[str, Any]]:
        args: list[Any] = [thread_id, status, limit, offset]
        visible = filters.thread_where(where, "runs.thread_id", args) if where else "TRUE"
        return await self.pg.fetch(
            f"""SELECT {RUN_COLUMNS} FROM runs WHERE thread_id = $1
                AND ($2::text IS NULL OR status = $2) AND {visible}
                ORDER BY created_at DESC, run_id DESC LIMIT $3 OFFSET $4""", *args)
