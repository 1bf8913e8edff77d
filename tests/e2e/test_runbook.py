"""Commands of ``docs/runbook.md`` that only a real CLI process can show working.

The runbook's rollback rehearsal is ``aegra db downgrade -1``: a relative revision that
starts with a dash must reach alembic as the target, not be refused as an unknown option.
(The Prometheus queries of the runbook are checked in ``test_prometheus.py``.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aegra.adapters.postgres import migrate
from tests.e2e.conftest import base_env


def test_db_downgrade_accepts_a_relative_revision(database_url: str, tmp_path: Path) -> None:
    migrate.upgrade(database_url)
    head = migrate.head()
    down = subprocess.run([sys.executable, "-m", "aegra", "db", "downgrade", "-1"],
                          env=base_env(database_url), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stdout + down.stderr
    previous = migrate.current(database_url)
    assert previous not in (None, head)
    assert f"database at {previous}" in down.stdout
    migrate.upgrade(database_url)  # the rehearsal's way back
    assert migrate.current(database_url) == head
