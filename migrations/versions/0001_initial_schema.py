"""Initial schema: assistants (+versions), threads, runs with leases, crons.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Written as SQL on purpose: the tables are read by hand-written queries in
``aegra.adapters.postgres``, so the DDL is the contract. Each index names the query it
serves.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE assistant (
    assistant_id  text PRIMARY KEY,
    graph_id      text NOT NULL,
    name          text NOT NULL,
    description   text,
    config        jsonb NOT NULL DEFAULT '{}',
    context       jsonb NOT NULL DEFAULT '{}',
    metadata      jsonb NOT NULL DEFAULT '{}',
    version       integer NOT NULL DEFAULT 1,
    user_id       text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- search by graph_id; default listing order created_at desc with id tie-break
CREATE INDEX assistant_graph_id_idx ON assistant (graph_id);
CREATE INDEX assistant_created_idx ON assistant (created_at DESC, assistant_id);
CREATE INDEX assistant_metadata_idx ON assistant USING gin (metadata jsonb_path_ops);
CREATE INDEX assistant_user_idx ON assistant (user_id);

CREATE TABLE assistant_versions (
    assistant_id  text NOT NULL REFERENCES assistant (assistant_id) ON DELETE CASCADE,
    version       integer NOT NULL,
    graph_id      text NOT NULL,
    name          text NOT NULL,
    description   text,
    config        jsonb NOT NULL DEFAULT '{}',
    context       jsonb NOT NULL DEFAULT '{}',
    metadata      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (assistant_id, version)
);

CREATE TABLE thread (
    thread_id        text PRIMARY KEY,
    status           text NOT NULL DEFAULT 'idle'
                     CHECK (status IN ('idle', 'busy', 'interrupted', 'error')),
    metadata         jsonb NOT NULL DEFAULT '{}',
    config           jsonb NOT NULL DEFAULT '{}',
    "values"         jsonb,
    interrupts       jsonb NOT NULL DEFAULT '{}',
    error            jsonb,
    ttl              jsonb,
    user_id          text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    state_updated_at timestamptz
);
-- thread search: metadata containment (the chat-history sidebar), status, sort orders
CREATE INDEX thread_metadata_idx ON thread USING gin (metadata jsonb_path_ops);
CREATE INDEX thread_status_idx ON thread (status);
CREATE INDEX thread_created_idx ON thread (created_at DESC, thread_id);
CREATE INDEX thread_updated_idx ON thread (updated_at DESC, thread_id);
CREATE INDEX thread_user_idx ON thread (user_id);

CREATE TABLE crons (
    cron_id          text PRIMARY KEY,
    assistant_id     text NOT NULL REFERENCES assistant (assistant_id) ON DELETE CASCADE,
    thread_id        text REFERENCES thread (thread_id) ON DELETE CASCADE,
    user_id          text,
    schedule         text NOT NULL,
    timezone         text,  -- IANA name; NULL means UTC (reported as null, as the platform does)
    end_time         timestamptz,
    enabled          boolean NOT NULL DEFAULT true,
    on_run_completed text,
    payload          jsonb NOT NULL DEFAULT '{}',
    metadata         jsonb NOT NULL DEFAULT '{}',
    next_run_date    timestamptz,
    last_run_date    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- the ticker: due, enabled crons claimed with FOR UPDATE SKIP LOCKED
CREATE INDEX crons_due_idx ON crons (next_run_date) WHERE enabled;
CREATE INDEX crons_user_idx ON crons (user_id);
CREATE INDEX crons_assistant_idx ON crons (assistant_id);
CREATE INDEX crons_thread_idx ON crons (thread_id);
CREATE INDEX crons_metadata_idx ON crons USING gin (metadata jsonb_path_ops);
-- cron search: default order created_at desc with id tie-break
CREATE INDEX crons_created_idx ON crons (created_at DESC, cron_id);

CREATE TABLE runs (
    run_id             text PRIMARY KEY,
    thread_id          text NOT NULL REFERENCES thread (thread_id) ON DELETE CASCADE,
    assistant_id       text NOT NULL REFERENCES assistant (assistant_id) ON DELETE CASCADE,
    cron_id            text REFERENCES crons (cron_id) ON DELETE SET NULL,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'running', 'success', 'error', 'timeout',
                                         'interrupted')),
    multitask_strategy text NOT NULL DEFAULT 'reject',
    metadata           jsonb NOT NULL DEFAULT '{}',
    -- everything a worker on any instance needs to run it from the id alone
    execution_params   jsonb NOT NULL,
    output             jsonb,
    error              jsonb,
    user_id            text,
    stateless          boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    available_at       timestamptz NOT NULL DEFAULT now(),  -- created_at + after_seconds
    started_at         timestamptz,
    ended_at           timestamptz,
    -- lease and fencing: claim increments attempt, which is the claim token
    claimed_by         text,
    lease_expires_at   timestamptz,
    attempt            integer NOT NULL DEFAULT 0,
    -- crashes charged against BG_JOB_MAX_RETRIES (a drain hand-back is not a crash)
    retries            integer NOT NULL DEFAULT 0,
    -- persisted cancel request, so a listener that reconnects does not miss it
    cancel_action      text CHECK (cancel_action IN ('interrupt', 'rollback')),
    cancel_requested_at timestamptz
);
-- runs.list on a thread, newest first
CREATE INDEX runs_thread_created_idx ON runs (thread_id, created_at DESC);
-- claim / fallback polling / stuck-pending scan: oldest available pending first
CREATE INDEX runs_pending_idx ON runs (available_at, created_at) WHERE status = 'pending';
-- reaper: expired leases
CREATE INDEX runs_lease_idx ON runs (lease_expires_at) WHERE status = 'running';
-- heartbeater: every lease one instance holds, in one statement
CREATE INDEX runs_claimed_by_idx ON runs (claimed_by) WHERE claimed_by IS NOT NULL;
-- at most one running run per thread, whatever the claim path (belt to the claim's braces)
CREATE UNIQUE INDEX runs_one_running_per_thread ON runs (thread_id) WHERE status = 'running';
-- cancel listener re-reads open cancel requests after a reconnect
CREATE INDEX runs_cancel_idx ON runs (cancel_requested_at)
    WHERE cancel_action IS NOT NULL AND status IN ('pending', 'running');
CREATE INDEX runs_status_idx ON runs (status);
CREATE INDEX runs_cron_idx ON runs (cron_id) WHERE cron_id IS NOT NULL;
"""

DOWNGRADE = """
DROP TABLE IF EXISTS runs;
DROP TABLE IF EXISTS crons;
DROP TABLE IF EXISTS thread;
DROP TABLE IF EXISTS assistant_versions;
DROP TABLE IF EXISTS assistant;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
