"""Schema migrations (alembic), synchronous: run them in a thread from Trio code.

Startup path: read the current revision without a lock and skip when it is
already head; otherwise upgrade inside one transaction that first takes a
transaction-level advisory lock, so instances booting together migrate once and the
others wait, then find nothing to do. The scripts are located from the installed package
(wheel) or the source tree (editable install), never from the working directory.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

import aegra

# pg_advisory_xact_lock key: "aegra" + "mig" as digits; any fixed 64-bit number works.
MIGRATION_LOCK_KEY = 0x0AE62A_0001


def script_location() -> Path:
    packaged = Path(aegra.__file__).parent / "migrations"
    if (packaged / "env.py").is_file():
        return packaged
    source = Path(__file__).resolve().parents[4] / "migrations"
    if (source / "env.py").is_file():
        return source
    raise RuntimeError("aegra migration scripts not found (broken install?)")


def sqlalchemy_url(dsn: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix):]
    return dsn


def _config(out: Callable[[str], None] | None = None) -> AlembicConfig:
    buffer = _Writer(out) if out else io.StringIO()
    cfg = AlembicConfig(stdout=buffer)
    cfg.set_main_option("script_location", str(script_location()))
    return cfg


class _Writer(io.StringIO):
    def __init__(self, out: Callable[[str], None]) -> None:
        super().__init__()
        self._out = out

    def write(self, s: str) -> int:
        if s.strip():
            self._out(s.rstrip("\n"))
        return len(s)


def _engine(dsn: str) -> Engine:
    return create_engine(sqlalchemy_url(dsn), poolclass=NullPool)


def head() -> str:
    rev = ScriptDirectory.from_config(_config()).get_current_head()
    assert rev is not None
    return rev


def current(dsn: str) -> str | None:
    engine = _engine(dsn)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(dsn: str, revision: str = "head", out: Callable[[str], None] | None = None) -> None:
    _locked(dsn, lambda cfg: command.upgrade(cfg, revision), out)


def downgrade(dsn: str, revision: str, out: Callable[[str], None] | None = None) -> None:
    _locked(dsn, lambda cfg: command.downgrade(cfg, revision), out)


def history(verbose: bool, out: Callable[[str], None]) -> None:
    command.history(_config(out), verbose=verbose)


def _locked(dsn: str, action: Callable[[AlembicConfig], None],
            out: Callable[[str], None] | None) -> None:
    engine = _engine(dsn)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            cfg = _config(out)
            cfg.attributes["connection"] = conn
            action(cfg)
    finally:
        engine.dispose()


def ensure_migrated(dsn: str, out: Callable[[str], None] | None = None
                    ) -> tuple[str | None, str, bool]:
    """Startup migration: (revision found, head, whether this process upgraded).

    The lock-free read skips everything when already at head. Otherwise the revision is
    read again under the lock: an instance that waited behind another's upgrade finds
    head and does nothing, so a fleet booting together migrates exactly once.
    """
    target = head()
    before = current(dsn)
    if before == target:
        return before, target, False
    ran = False

    def _upgrade_if_behind(cfg: AlembicConfig) -> None:
        nonlocal before, ran
        before = MigrationContext.configure(cfg.attributes["connection"]).get_current_revision()
        if before != target:
            command.upgrade(cfg, "head")
            ran = True

    _locked(dsn, _upgrade_if_behind, out)
    return before, target, ran
