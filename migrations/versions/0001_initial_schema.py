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

-- The run path's three units of work as functions: one round trip each instead of
-- BEGIN, four or five statements and COMMIT. VOLATILE plpgsql in READ COMMITTED takes a
-- new snapshot per statement, so a statement after the thread-row lock sees what the
-- lock's previous holder committed, exactly as the same statements sent one by one.
-- aegra.adapters.postgres.runs calls them and keeps the rarer paths in Python.

-- Create a run: the fast path only. Returns no row, having changed nothing, when the
-- caller must take the full path (assistant changed since the caller read it, thread
-- missing without permission to create it, or runs in flight and a strategy other
-- than enqueue).
CREATE FUNCTION aegra_create_run(
    p_run_id text, p_thread_id text, p_assistant_id text, p_assistant_version integer,
    p_assistant_updated timestamptz, p_graph_id text, p_create_thread boolean,
    p_cron_id text, p_strategy text, p_metadata jsonb, p_params jsonb, p_user_id text,
    p_stateless boolean, p_after_s double precision)
RETURNS SETOF runs LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM assistant WHERE assistant_id = p_assistant_id
        AND version = p_assistant_version AND updated_at = p_assistant_updated;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM 1 FROM thread WHERE thread_id = p_thread_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        IF NOT p_create_thread THEN
            RETURN;
        END IF;
        INSERT INTO thread (thread_id, status, metadata, user_id)
        VALUES (p_thread_id, 'busy', jsonb_build_object('graph_id', p_graph_id,
                'assistant_id', p_assistant_id), p_user_id)
        ON CONFLICT (thread_id) DO NOTHING;
        IF NOT FOUND THEN
            RETURN;  -- created concurrently: the full path sorts it out
        END IF;
    ELSIF p_strategy <> 'enqueue' AND EXISTS (
            SELECT 1 FROM runs WHERE thread_id = p_thread_id
              AND status IN ('pending', 'running')) THEN
        RETURN;
    END IF;
    UPDATE thread SET status = 'busy', updated_at = now(),
           metadata = jsonb_build_object('graph_id', p_graph_id,
                                         'assistant_id', p_assistant_id) || metadata
     WHERE thread_id = p_thread_id;
    RETURN QUERY
    INSERT INTO runs (run_id, thread_id, assistant_id, cron_id, status, multitask_strategy,
                      metadata, execution_params, user_id, stateless, available_at)
    VALUES (p_run_id, p_thread_id, p_assistant_id, p_cron_id, 'pending', p_strategy,
            p_metadata, p_params, p_user_id, p_stateless,
            now() + make_interval(secs => p_after_s))
    RETURNING *;
END $$;

-- Claim a pending run: only the oldest available pending run of its thread, and only
-- while nothing else runs on the thread. Returns the claimed row, or none.
CREATE FUNCTION aegra_claim_run(p_run_id text, p_owner text, p_lease_s double precision)
RETURNS SETOF runs LANGUAGE plpgsql AS $$
DECLARE
    v_thread text;
BEGIN
    SELECT r.thread_id INTO v_thread FROM runs r
     WHERE r.run_id = p_run_id AND r.status = 'pending';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM 1 FROM thread WHERE thread_id = v_thread FOR NO KEY UPDATE;
    RETURN QUERY
    UPDATE runs SET status = 'running', claimed_by = p_owner, attempt = attempt + 1,
           lease_expires_at = now() + make_interval(secs => p_lease_s),
           started_at = now(), updated_at = now()
     WHERE run_id = p_run_id AND status = 'pending' AND claimed_by IS NULL
       AND available_at <= now()
       AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.thread_id = v_thread
                                             AND o.status = 'running')
       AND run_id = (SELECT p.run_id FROM runs p
                      WHERE p.thread_id = v_thread AND p.status = 'pending'
                      ORDER BY p.created_at, p.run_id LIMIT 1)
    RETURNING *;
    IF FOUND THEN
        UPDATE thread SET status = 'busy', updated_at = now() WHERE thread_id = v_thread;
    END IF;
END $$;

-- Record a run's end, fenced by its claim (owner and attempt). The thread's status is
-- decided by the caller (aegra.domain.runs.thread_status_after) for both cases: another
-- run pending on the thread or not. Returns (written, the thread's next pending run).
CREATE FUNCTION aegra_finish_run(
    p_run_id text, p_thread_id text, p_owner text, p_attempt integer, p_status text,
    p_output jsonb, p_error jsonb, p_set_values boolean, p_values jsonb,
    p_interrupts jsonb, p_thread_status_if_pending text, p_thread_status_if_none text,
    OUT written boolean, OUT next_run text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM thread WHERE thread_id = p_thread_id FOR NO KEY UPDATE;
    UPDATE runs SET status = p_status, output = p_output, error = p_error,
           ended_at = now(), updated_at = now(), claimed_by = NULL, lease_expires_at = NULL
     WHERE run_id = p_run_id AND claimed_by = p_owner AND attempt = p_attempt;
    written := FOUND;
    IF NOT written THEN
        RETURN;
    END IF;
    SELECT r.run_id INTO next_run FROM runs r
     WHERE r.thread_id = p_thread_id AND r.status = 'pending'
     ORDER BY r.created_at, r.run_id LIMIT 1;
    UPDATE thread SET
           status = CASE WHEN next_run IS NULL THEN p_thread_status_if_none
                         ELSE p_thread_status_if_pending END,
           "values" = CASE WHEN p_set_values THEN p_values ELSE "values" END,
           state_updated_at = CASE WHEN p_set_values THEN now() ELSE state_updated_at END,
           interrupts = p_interrupts, error = p_error, updated_at = now()
     WHERE thread_id = p_thread_id;
END $$;
"""

DOWNGRADE = """
DROP FUNCTION IF EXISTS aegra_finish_run;
DROP FUNCTION IF EXISTS aegra_claim_run;
DROP FUNCTION IF EXISTS aegra_create_run;
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
