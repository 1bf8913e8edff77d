"""Durable webhook outbox (issue 13): deliveries written with the run's final status, delivered by any instance.

One row per run with a webhook, inserted in the transaction that finishes the run (or
the reaper's settle). ``id`` is the Standard Webhooks ``webhook-id``: stable across every
attempt, the receiver's idempotency key. No foreign key to ``runs``: a stateless run's
thread (and its runs) is deleted right after it finishes, and its delivery must outlive it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE aegra_webhook_deliveries (
    id               uuid PRIMARY KEY,
    run_id           text NOT NULL,
    thread_id        text NOT NULL,
    url              text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,  -- claims so far; the claim's fence token
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    window_start_at  timestamptz NOT NULL DEFAULT now(),  -- retries stop window_s after it
    last_status_code integer,
    last_error       text,
    claimed_by       text,
    claim_until      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX aegra_webhook_deliveries_due ON aegra_webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX aegra_webhook_deliveries_run ON aegra_webhook_deliveries (run_id);
-- the dispatcher's pruning of finished deliveries past their retention
CREATE INDEX aegra_webhook_deliveries_finished ON aegra_webhook_deliveries (created_at)
    WHERE status <> 'pending';

CREATE TABLE aegra_webhook_attempts (
    delivery_id  uuid NOT NULL REFERENCES aegra_webhook_deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz NOT NULL DEFAULT now(),
    status_code  integer,
    error        text,
    claimed_by   text NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS aegra_webhook_attempts;
DROP TABLE IF EXISTS aegra_webhook_deliveries;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
