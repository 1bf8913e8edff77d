"""The webhook outbox in PostgreSQL (migration 0003).

``INSERT_DELIVERY`` runs inside the transaction that finishes a run (``runs.py``) or
settles it (``leases.py``): it builds the platform's webhook body from the run row as
just written, so the delivery exists exactly when the final status does. Claims take
rows with ``FOR UPDATE SKIP LOCKED`` and hold them for a short lease (database
``now()``, instances' clocks differ); records are fenced by (claimer, attempt).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from aegra.adapters.postgres.pool import PgPool
from aegra.domain.webhook_outbox import AttemptResult, Delivery, Verdict

# The body LangGraph Platform sends (langgraph_api/webhook.py): the run, its final status,
# values and error, and its timestamps; ``webhook_sent_at`` is added at each attempt.
INSERT_DELIVERY = """
INSERT INTO aegra_webhook_deliveries (id, run_id, thread_id, url, payload, next_attempt_at)
SELECT gen_random_uuid(), r.run_id, r.thread_id, r.execution_params->>'webhook',
       jsonb_build_object(
         'run_id', r.run_id, 'thread_id', r.thread_id, 'assistant_id', r.assistant_id,
         'created_at', r.created_at, 'updated_at', r.updated_at, 'metadata', r.metadata,
         'kwargs', r.execution_params, 'multitask_strategy', r.multitask_strategy,
         'status', r.status, 'run_started_at', r.started_at, 'run_ended_at', r.ended_at,
         'values', r.output, 'error', r.error),
       -- A run stopped from outside gets its thread's values right after (set_values);
       -- held until then, or for a few seconds if this instance dies first.
       CASE WHEN r.status IN ('interrupted', 'timeout') THEN now() + interval '5 seconds'
            ELSE now() END
  FROM runs r
 WHERE r.run_id = $1 AND coalesce(r.execution_params->>'webhook', '') <> ''"""

_CLAIM = """
UPDATE aegra_webhook_deliveries d
   SET claimed_by = $1, claim_until = now() + make_interval(secs => $3),
       attempts = d.attempts + 1
 WHERE d.id IN (SELECT id FROM aegra_webhook_deliveries
                 WHERE status = 'pending' AND next_attempt_at <= now()
                   AND (claim_until IS NULL OR claim_until < now())
                 ORDER BY next_attempt_at LIMIT $2
                 FOR UPDATE SKIP LOCKED)
RETURNING d.id::text AS id, d.run_id, d.url, d.payload, d.attempts,
          extract(epoch FROM d.window_start_at + make_interval(secs => $4) - now())::float8
            AS window_left_s"""

_RECORD = """
UPDATE aegra_webhook_deliveries
   SET status = $3, last_status_code = $4, last_error = $5,
       next_attempt_at = CASE WHEN $6::float8 IS NULL THEN next_attempt_at
                              ELSE now() + make_interval(secs => $6::float8) END,
       delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END,
       claimed_by = NULL, claim_until = NULL
 WHERE id = $1::uuid AND claimed_by = $2 AND attempts = $7
RETURNING id"""

_LOG_ATTEMPT = """
INSERT INTO aegra_webhook_attempts
       (delivery_id, attempt, started_at, status_code, error, claimed_by)
VALUES ($1::uuid, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"""

_LOG = """
SELECT d.id::text AS webhook_id, d.run_id, d.thread_id, d.url, d.status,
       CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
       d.last_status_code, d.last_error, d.created_at, d.delivered_at,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                   'attempt', a.attempt, 'started_at', a.started_at,
                   'ended_at', a.ended_at, 'status_code', a.status_code,
                   'error', a.error) ORDER BY a.attempt)
                   FROM aegra_webhook_attempts a WHERE a.delivery_id = d.id),
                '[]'::jsonb) AS attempts
  FROM aegra_webhook_deliveries d WHERE d.run_id = $1 ORDER BY d.created_at"""

_REDELIVER = """
UPDATE aegra_webhook_deliveries
   SET status = 'pending', next_attempt_at = now(), window_start_at = now(),
       delivered_at = NULL
 WHERE run_id = $1"""


async def insert_delivery(conn: asyncpg.Connection, run_id: str) -> None:
    """Inside the caller's transaction: the run's delivery, if it names a webhook."""
    await conn.execute(INSERT_DELIVERY, run_id)


async def _record(conn: asyncpg.Connection, delivery: Delivery, owner: str,
                  started_at: datetime, result: AttemptResult, verdict: Verdict) -> bool:
    async with conn.transaction():
        # Logged even when the claim was lost: the request was made all the same.
        await conn.execute(_LOG_ATTEMPT, delivery.id, delivery.attempt, started_at,
                           result.status_code, result.error, owner)
        done = await conn.fetchval(_RECORD, delivery.id, owner, verdict.status,
                                   result.status_code, result.error, verdict.retry_in_s,
                                   delivery.attempt)
    return done is not None


# Finished deliveries past their retention, oldest first, in one bounded batch (the
# attempts go with them: ON DELETE CASCADE). SKIP LOCKED: instances pruning together
# take different rows, and a row being redelivered right now is left alone.
_PRUNE = """
WITH gone AS (
  DELETE FROM aegra_webhook_deliveries
   WHERE id IN (SELECT id FROM aegra_webhook_deliveries
                 WHERE status <> 'pending'
                   AND created_at < now() - make_interval(secs => $1::float8)
                 ORDER BY created_at LIMIT $2
                 FOR UPDATE SKIP LOCKED)
  RETURNING 1)
SELECT count(*) FROM gone"""

class PgWebhookOutbox:
    def __init__(self, pg: PgPool) -> None:
        self.pg = pg

    async def claim_due(self, owner: str, limit: int, claim_s: float,
                        window_s: float) -> list[Delivery]:
        rows = await self.pg.fetch(_CLAIM, owner, limit, float(claim_s), float(window_s))
        return [Delivery(id=r["id"], run_id=r["run_id"], url=r["url"], payload=r["payload"],
                         attempt=r["attempts"], window_left_s=r["window_left_s"])
                for r in rows]

    async def record(self, delivery: Delivery, owner: str, started_at: datetime,
                     result: AttemptResult, verdict: Verdict) -> bool:
        return await self.pg.run(_record, delivery, owner, started_at, result, verdict)

    async def set_values(self, run_id: str, values: object) -> None:
        await self.pg.execute(
            """UPDATE aegra_webhook_deliveries
                  SET payload = CASE WHEN $2::jsonb IS NULL THEN payload
                                     ELSE jsonb_set(payload, '{values}', $2::jsonb) END,
                      next_attempt_at = least(next_attempt_at, now())
                WHERE run_id = $1 AND attempts = 0""", run_id, values)

    async def log(self, run_id: str) -> list[dict[str, Any]]:
        return await self.pg.fetch(_LOG, run_id)

    async def redeliver(self, run_id: str) -> list[dict[str, Any]]:
        await self.pg.execute(_REDELIVER, run_id)
        return await self.log(run_id)

    async def prune(self, older_than_s: float, limit: int) -> int:
        deleted = await self.pg.fetchval(_PRUNE, older_than_s, limit)
        return int(deleted or 0)
