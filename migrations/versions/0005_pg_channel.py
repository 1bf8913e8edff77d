"""The PostgreSQL cross-process channel (issue 11): the job queue without Redis.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

``aegra_jobs`` holds run ids waiting for a worker when several server processes share
one database without Redis (``[server] channel = "postgres"``). ``pos`` orders it:
ordinary puts take the next value of ``aegra_jobs_seq``, puts to the front its negation,
so the newest front put comes first (as the in-memory deque's ``appendleft``). A delayed
put is a row whose ``available_at`` lies ahead. Workers take rows with
``DELETE ... FOR UPDATE SKIP LOCKED`` and are woken by NOTIFY ``aegra_jobs``. The runs
table stays the truth: a lost row is found again by the reaper's stuck-pending rule.

``aegra_thread_events`` (UNLOGGED: live events, worthless after a crash) carries a
thread-level event too large for a NOTIFY payload (8000 bytes): the notification names
its row instead; rows older than a minute are pruned by later writes.

``aegra_run_streams`` and ``aegra_run_events`` (UNLOGGED too) are the run streams' replay
buffers and results, so a stream served by any process follows a run executing on
another (``adapters/postgres/run_events.py``).
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE SEQUENCE IF NOT EXISTS aegra_jobs_seq;
CREATE TABLE IF NOT EXISTS aegra_jobs (
    pos bigint PRIMARY KEY,
    run_id text NOT NULL,
    available_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNLOGGED TABLE IF NOT EXISTS aegra_thread_events (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    payload text NOT NULL
);
CREATE UNLOGGED TABLE IF NOT EXISTS aegra_run_streams (
    run_id text PRIMARY KEY,
    last_seq bigint NOT NULL DEFAULT 0,
    dropped bigint NOT NULL DEFAULT 0,
    size bigint NOT NULL DEFAULT 0,
    done boolean NOT NULL DEFAULT false,
    result bytea,
    touched_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS aegra_run_streams_touched ON aegra_run_streams (touched_at);
CREATE UNLOGGED TABLE IF NOT EXISTS aegra_run_events (
    run_id text NOT NULL,
    seq bigint NOT NULL,
    name text NOT NULL,
    frame bytea NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS aegra_run_events;
DROP TABLE IF EXISTS aegra_run_streams;
DROP TABLE IF EXISTS aegra_thread_events;
DROP TABLE IF EXISTS aegra_jobs;
DROP SEQUENCE IF EXISTS aegra_jobs_seq;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
