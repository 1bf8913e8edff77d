"""Leases in PostgreSQL: one heartbeat statement per interval, and the reaper's scans.

Lease times use PostgreSQL's ``now()`` (instances' clocks differ); intervals use the Trio
clock. Every statement here is fenced by ``claimed_by`` (and ``attempt`` where a single
run is written), so a reaper and a late worker can never both win.
"""

from __future__ import annotations

import asyncpg

from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.webhooks import insert_delivery
from aegra.domain.leases import Expired, ReapResult
from aegra.domain.runs import thread_status_after

_EXPIRED = "status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < now())"


async def _reap(conn: asyncpg.Connection, max_retries: int, stuck_s: float) -> ReapResult:
    async with conn.transaction():
        requeue = await conn.fetch(
            f"""UPDATE runs SET status = 'pending', claimed_by = NULL, lease_expires_at = NULL,
                    retries = retries + 1, updated_at = now()
                WHERE run_id IN (SELECT run_id FROM runs WHERE {_EXPIRED} AND retries < $1
                                 FOR UPDATE SKIP LOCKED)
                RETURNING run_id""", max_retries)
        exhausted = await conn.fetch(
            f"""SELECT run_id, thread_id, execution_params->>'graph_id' AS graph_id, retries
                FROM runs WHERE {_EXPIRED} AND retries >= $1
                FOR UPDATE SKIP LOCKED""", max_retries)
        # A queue message was lost (or its instance died before dequeuing): resend it.
        stuck = await conn.fetch(
            """UPDATE runs SET updated_at = now()
               WHERE run_id IN (SELECT run_id FROM runs WHERE status = 'pending'
                                  AND available_at <= now()
                                  AND updated_at < now() - make_interval(secs => $1)
                                FOR UPDATE SKIP LOCKED)
               RETURNING run_id""", stuck_s)
    return ReapResult(
        requeue=[r["run_id"] for r in requeue],
        exhausted=[Expired(run_id=r["run_id"], thread_id=r["thread_id"],
                           graph_id=r["graph_id"], retries=r["retries"]) for r in exhausted],
        stuck=[r["run_id"] for r in stuck])


async def _settle(conn: asyncpg.Connection, run: Expired, values: object,
                  message: str | None, outbox: bool = False) -> bool:
    """Finalize an exhausted run: success with its output, or error; release the thread."""
    status = "success" if message is None else "error"
    error = None if message is None else {"error": "RetriesExhausted", "message": message}
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM thread WHERE thread_id = $1 FOR NO KEY UPDATE",
                           run.thread_id)
        done = await conn.fetchval(
            f"""UPDATE runs SET status = $2, output = $3, error = $4, ended_at = now(),
                    updated_at = now(), claimed_by = NULL, lease_expires_at = NULL
                WHERE run_id = $1 AND {_EXPIRED} RETURNING run_id""",
            run.run_id, status, values, error)
        if done is None:
            return False
        pending = await conn.fetchval(
            "SELECT 1 FROM runs WHERE thread_id = $1 AND status = 'pending' LIMIT 1",
            run.thread_id)
        thread_status = thread_status_after(errored=error is not None, interrupted=False,
                                            others_pending=pending is not None)
        await conn.execute(
            """UPDATE thread SET status = $2, error = $3, updated_at = now(),
                   "values" = COALESCE($4, "values") WHERE thread_id = $1""",
            run.thread_id, thread_status, error, values)
        if outbox:  # with the final status, as a worker's finish does (issue 13)
            await insert_delivery(conn, run.run_id)
    return True


class PgLeases:
    def __init__(self, pg: PgPool, *, outbox: bool = False) -> None:
        self.pg = pg
        self.outbox = outbox  # settled runs get their webhook delivery

    async def extend(self, owner: str, run_ids: list[str], lease_s: float
                     ) -> dict[str, str | None]:
        """Extend every lease this instance holds, in one statement.

        Returns the runs still ours, each with its pending cancel request if any: the
        heartbeat doubles as the cancel channel of last resort (Redis down, a listener
        between reconnects)."""
        if not run_ids:
            return {}
        rows = await self.pg.fetch(
            """UPDATE runs SET lease_expires_at = now() + make_interval(secs => $3)
               WHERE run_id = ANY($2) AND claimed_by = $1 AND status = 'running'
               RETURNING run_id, cancel_action""", owner, run_ids, lease_s)
        return {r["run_id"]: r["cancel_action"] for r in rows}

    async def cancel_requests(self, owner: str) -> list[tuple[str, str]]:
        """Open cancel requests for runs this instance executes (listener resync)."""
        rows = await self.pg.fetch(
            """SELECT run_id, cancel_action FROM runs WHERE claimed_by = $1
               AND status = 'running' AND cancel_action IS NOT NULL""", owner)
        return [(r["run_id"], r["cancel_action"]) for r in rows]

    async def reap(self, max_retries: int, stuck_pending_s: float) -> ReapResult:
        return await self.pg.run(_reap, max_retries, stuck_pending_s)

    async def settle(self, run: Expired, values: object, message: str | None) -> bool:
        return await self.pg.run(_settle, run, values, message, self.outbox)
