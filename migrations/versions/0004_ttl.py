"""Time-to-live sweeps (issue 13): thread TTLs and checkpointer.ttl.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

``thread.expires_at`` is the sweeper's clock, kept by a trigger so every path that writes
a thread (create, PATCH, copy, a run's create/claim/finish, state updates) agrees:

- on INSERT without a ``ttl`` the deployment default (``checkpointer.ttl.default_ttl``,
  which the sweeper writes to ``aegra_settings`` key ``thread_ttl_default``) is stamped,
  so, as on the platform, the default applies to threads created after it is configured;
- a TTL given on create/PATCH sets ``expires_at`` to the expiry the API answered;
- activity restarts the clock, ``expires_at = now() + ttl_minutes``: a run starting or
  ending (``status`` changes) or a state write (``state_updated_at`` changes), so a
  conversation in use is not swept under its user. A metadata-only PATCH is not activity.

``ttl`` (jsonb, what ``?include=ttl`` reports) gets the same ``expires_at``. The partial
index keeps the sweeper's claim an index range scan over expired rows only.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE thread ADD COLUMN IF NOT EXISTS expires_at timestamptz;
CREATE INDEX IF NOT EXISTS thread_expires_idx ON thread (expires_at)
    WHERE expires_at IS NOT NULL;
UPDATE thread SET expires_at = (ttl->>'expires_at')::timestamptz
 WHERE ttl->>'expires_at' IS NOT NULL;

CREATE OR REPLACE FUNCTION aegra_thread_ttl_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_default jsonb;
BEGIN
    IF TG_OP = 'INSERT' AND NEW.ttl IS NULL THEN
        SELECT value INTO v_default FROM aegra_settings WHERE key = 'thread_ttl_default';
        IF v_default IS NOT NULL THEN
            NEW.ttl := jsonb_build_object('strategy', v_default->>'strategy',
                                          'ttl_minutes', (v_default->>'ttl_minutes')::float8);
        END IF;
    END IF;
    IF NEW.ttl IS NULL OR NEW.ttl->>'ttl_minutes' IS NULL THEN
        NEW.expires_at := NULL;
        RETURN NEW;
    END IF;
    IF (TG_OP = 'INSERT' OR NEW.ttl IS DISTINCT FROM OLD.ttl)
       AND NEW.ttl->>'expires_at' IS NOT NULL THEN
        -- a TTL just given (create, PATCH): the expiry the API computed and answered
        NEW.expires_at := (NEW.ttl->>'expires_at')::timestamptz;
    ELSIF TG_OP = 'INSERT' OR NEW.ttl IS DISTINCT FROM OLD.ttl
       OR NEW.status IS DISTINCT FROM OLD.status
       OR NEW.state_updated_at IS DISTINCT FROM OLD.state_updated_at THEN
        -- stamped default, or activity: a run starting or ending, a state write
        NEW.expires_at := now() + (NEW.ttl->>'ttl_minutes')::float8 * interval '1 minute';
        NEW.ttl := NEW.ttl || jsonb_build_object('expires_at', NEW.expires_at);
    END IF;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS thread_ttl_stamp ON thread;
CREATE TRIGGER thread_ttl_stamp BEFORE INSERT OR UPDATE ON thread
    FOR EACH ROW EXECUTE FUNCTION aegra_thread_ttl_stamp();
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS thread_ttl_stamp ON thread;
DROP FUNCTION IF EXISTS aegra_thread_ttl_stamp();
DROP INDEX IF EXISTS thread_expires_idx;
ALTER TABLE thread DROP COLUMN IF EXISTS expires_at;
DELETE FROM aegra_settings WHERE key = 'thread_ttl_default';
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
