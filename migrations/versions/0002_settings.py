"""Deployment settings: one row per switch, shared by every instance (maintenance mode).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

Key-value rather than one column per switch: a new switch needs no migration. Read by
``aegra.adapters.postgres.admin``.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE aegra_settings (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS aegra_settings;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
