"""``ThreadSweeps`` on PostgreSQL: claim expired threads with SKIP LOCKED, apply their strategy.

One batch is one short transaction on one pooled connection:

1. lock up to ``limit`` expired, idle threads with no pending/running run
   (``FOR UPDATE SKIP LOCKED``): rows another instance's sweeper, a run being created
   (``FOR NO KEY UPDATE``) or a run insert (the foreign key's ``FOR KEY SHARE``) holds are
   skipped, so instances never do the same work and never wait on live traffic;
2. check the rule again in a new statement (READ COMMITTED: a fresh snapshot). A run
   committed between the claim's snapshot and its lock is seen here; from now on our row
   lock makes every run creation on these threads wait, then find them gone;
3. ``delete``: the thread row with LangGraph's checkpoint tables (runs and crons go by
   ON DELETE CASCADE, counted first); ``keep_latest``: every checkpoint but the newest of
   each namespace, their writes, blobs no kept checkpoint points at, and the clock stops
   (``expires_at = NULL``; the next activity restarts it, see migration 0004).
"""

from __future__ import annotations

import asyncpg

from aegra.adapters.postgres.pool import PgPool
from aegra.domain.ttl import SETTING_KEY, SweepBatch, TtlDefault

_RULE = """t.expires_at <= now() AND t.status <> 'busy'
   AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id
                   AND r.status IN ('pending', 'running'))"""
CLAIM = f"""
SELECT t.thread_id FROM thread t WHERE {_RULE}
 ORDER BY t.expires_at LIMIT $1 FOR UPDATE OF t SKIP LOCKED"""
RECHECK = f"""
SELECT t.thread_id, COALESCE(t.ttl->>'strategy', 'delete') AS strategy FROM thread t
 WHERE t.thread_id = ANY($1::text[]) AND {_RULE}"""
COUNT_CHILDREN = """
SELECT (SELECT count(*) FROM runs WHERE thread_id = ANY($1::text[])) AS runs,
       (SELECT count(*) FROM crons WHERE thread_id = ANY($1::text[])) AS crons"""
DELETE = """
WITH gone AS (DELETE FROM thread WHERE thread_id = ANY($1::text[]) RETURNING thread_id),
     c AS (DELETE FROM checkpoints WHERE thread_id = ANY($1::text[]) RETURNING 1),
     b AS (DELETE FROM checkpoint_blobs WHERE thread_id = ANY($1::text[])),
     w AS (DELETE FROM checkpoint_writes WHERE thread_id = ANY($1::text[]))
SELECT (SELECT count(*) FROM gone) AS threads, (SELECT count(*) FROM c) AS checkpoints"""
# checkpoint_id is a uuid6 string: the greatest is the newest (LangGraph lists by it).
PRUNE = """
WITH latest AS (SELECT thread_id, checkpoint_ns, max(checkpoint_id) AS keep
                  FROM checkpoints WHERE thread_id = ANY($1::text[])
                 GROUP BY thread_id, checkpoint_ns),
     c AS (DELETE FROM checkpoints c USING latest l
            WHERE c.thread_id = l.thread_id AND c.checkpoint_ns = l.checkpoint_ns
              AND c.checkpoint_id < l.keep RETURNING 1),
     w AS (DELETE FROM checkpoint_writes w USING latest l
            WHERE w.thread_id = l.thread_id AND w.checkpoint_ns = l.checkpoint_ns
              AND w.checkpoint_id < l.keep)
SELECT count(*) AS checkpoints FROM c"""
PRUNE_BLOBS = """
DELETE FROM checkpoint_blobs b WHERE b.thread_id = ANY($1::text[]) AND NOT EXISTS (
    SELECT 1 FROM checkpoints c WHERE c.thread_id = b.thread_id
       AND c.checkpoint_ns = b.checkpoint_ns
       AND c.checkpoint->'channel_versions'->>b.channel = b.version)"""
STOP_CLOCK = "UPDATE thread SET expires_at = NULL WHERE thread_id = ANY($1::text[])"
SET_DEFAULT = """
INSERT INTO aegra_settings (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"""


async def _batch(conn: asyncpg.Connection, limit: int) -> SweepBatch:
    async with conn.transaction():
        claimed = [r["thread_id"] for r in await conn.fetch(CLAIM, limit)]
        if not claimed:
            return SweepBatch(claimed=0)
        rows = await conn.fetch(RECHECK, claimed)
        doomed = [r["thread_id"] for r in rows if r["strategy"] != "keep_latest"]
        pruned = [r["thread_id"] for r in rows if r["strategy"] == "keep_latest"]
        runs = crons = checkpoints = deleted = 0
        if doomed:
            counts = await conn.fetchrow(COUNT_CHILDREN, doomed)
            runs, crons = int(counts["runs"]), int(counts["crons"])
            done = await conn.fetchrow(DELETE, doomed)
            deleted, checkpoints = int(done["threads"]), int(done["checkpoints"])
        if pruned:
            checkpoints += int(await conn.fetchval(PRUNE, pruned))
            await conn.execute(PRUNE_BLOBS, pruned)
            await conn.execute(STOP_CLOCK, pruned)
    return SweepBatch(claimed=len(claimed), deleted=deleted, pruned=len(pruned),
                      checkpoints=checkpoints, runs=runs, crons=crons)


class PgThreadSweeps:
    def __init__(self, pg: PgPool) -> None:
        self.pg = pg

    async def set_default(self, default: TtlDefault | None) -> None:
        """Written at every start: the creation trigger stamps it on new threads."""
        if default is None:
            await self.pg.execute("DELETE FROM aegra_settings WHERE key = $1", SETTING_KEY)
            return
        await self.pg.execute(SET_DEFAULT, SETTING_KEY,
                              {"strategy": default.strategy,
                               "ttl_minutes": default.ttl_minutes})

    async def sweep_batch(self, limit: int) -> SweepBatch:
        return await self.pg.run(_batch, limit)
