"""JobQueue on the PostgreSQL table ``aegra_jobs`` (migration 0005), woken by NOTIFY.

Several server processes on one database without Redis share this one queue (issue 11).
A put is one INSERT plus ``pg_notify('aegra_jobs')``; a get takes the first available
row with ``DELETE ... FOR UPDATE SKIP LOCKED`` (so each row goes to one worker), and
when there is none waits for a notification, the earliest delayed row, or ``poll_s``,
whichever comes first. The polling is the safety net for a notification lost while the
LISTEN connection was down. Delivery may repeat (a run put twice); the claim decides.

The wakeup is a coalescing push source: a notification sets the current ``trio.Event``
and replaces it, so any number of notifications costs one wakeup per waiting getter and
nothing queues up in memory (the table is the queue).
"""

from __future__ import annotations

import asyncpg
import trio

from aegra import logs
from aegra.adapters.postgres.listen import PgListener
from aegra.adapters.postgres.pool import PgPool
from aegra.domain.errors import StoreUnavailable

log = logs.get_logger("aegra.postgres.queue")
CHANNEL = "aegra_jobs"

_PUT = """
WITH job AS (
    INSERT INTO aegra_jobs (pos, run_id, available_at)
    VALUES (CASE WHEN $2 THEN -nextval('aegra_jobs_seq') ELSE nextval('aegra_jobs_seq') END,
            $1, now() + make_interval(secs => $3))
    RETURNING pos)
SELECT pg_notify('aegra_jobs', '') FROM job
"""

_TAKE = """
DELETE FROM aegra_jobs WHERE pos = (
    SELECT pos FROM aegra_jobs WHERE available_at <= now()
    ORDER BY pos LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING run_id
"""

# Seconds until the earliest delayed row is due (NULL: none waiting).
_NEXT_DUE = "SELECT extract(epoch FROM min(available_at) - now())::float8 FROM aegra_jobs"


async def _take(conn: asyncpg.Connection) -> tuple[str | None, float | None]:
    run_id = await conn.fetchval(_TAKE)
    if run_id is not None:
        return run_id, None
    return None, await conn.fetchval(_NEXT_DUE)


class PgJobQueue:
    def __init__(self, pg: PgPool, listener: PgListener, *, poll_s: float) -> None:
        self.pg = pg
        self.listener = listener
        self.poll_s = poll_s
        self._wake = trio.Event()
        self._listening = False

    def _notified(self, _payload: str) -> None:  # also on RESYNC: look again
        self._wake.set()
        self._wake = trio.Event()

    async def _ensure_listening(self) -> None:
        if self._listening:
            return
        try:
            await self.listener.listen(CHANNEL, self._notified)
            self._listening = True
        except StoreUnavailable as exc:  # polling covers it until the next get tries again
            log.info("queue.listen_failed", error=exc.message, poll_s=self.poll_s)

    async def put(self, run_id: str, *, front: bool = False, delay_s: float = 0.0) -> None:
        await self.pg.execute(_PUT, run_id, front, max(delay_s, 0.0))

    async def _take_one(self) -> tuple[str | None, float | None]:
        # Shielded: a DELETE cancelled after it committed would lose the id, so it always
        # completes, and an id taken by a cancelled get goes back to the front.
        with trio.CancelScope(shield=True):
            found = await self.pg.run(_take)
        if found[0] is not None:
            try:
                await trio.lowlevel.checkpoint()
            except trio.Cancelled:
                with trio.CancelScope(shield=True):
                    await self.put(found[0], front=True)
                raise
        return found

    async def get(self) -> str:
        while True:
            await self._ensure_listening()
            wake = self._wake  # before the look: a put landing meanwhile still wakes us
            try:
                run_id, next_due = await self._take_one()
            except StoreUnavailable as exc:
                log.warning("queue.take_failed", error=exc.message, retry_s=self.poll_s)
                await trio.sleep(self.poll_s)
                continue
            if run_id is not None:
                return run_id
            wait_s = self.poll_s
            if next_due is not None:
                wait_s = min(wait_s, max(next_due, 0.0) + 0.005)
            with trio.move_on_after(wait_s):
                await wake.wait()

    async def depth(self) -> int:
        return int(await self.pg.fetchval(
            "SELECT count(*) FROM aegra_jobs WHERE available_at <= now()"))
