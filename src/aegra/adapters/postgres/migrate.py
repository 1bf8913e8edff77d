"""Schema migrations (alembic), synchronous: run them in a thread from Trio code.

Startup path: read the current revision without a lock and skip when it is
already head; otherwise upgrade inside one transaction that first takes a
transaction-level advisory lock, so instances booting together migrate once and the
others wait, then find nothing to do. The scripts are located from the installed package
(wheel) or the source tree (editable install), never from the working directory.

A server at head (every start but the first after an upgrade) reads its revision with
one psycopg query and never imports alembic or SQLAlchemy: together they are about a
fifth of a server's start-up time.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING

import psycopg

from aegra.adapters.postgres.scripts import read_head, script_location

if TYPE_CHECKING:  # alembic and SQLAlchemy are imported only when a migration runs
    from alembic.config import Config as AlembicConfig
    from sqlalchemy.engine import Engine

# pg_advisory_xact_lock key: "aegra" + "mig" as digits; any fixed 64-bit number works.
MIGRATION_LOCK_KEY = 0x0AE62A_0001


def sqlalchemy_url(dsn: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix):]
    return dsn


def _config(out: Callable[[str], None] | None = None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

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
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(sqlalchemy_url(dsn), poolclass=NullPool)


def head() -> str:
    fast = read_head()
    if fast is not None:
        return fast
    from alembic.script import ScriptDirectory

    rev = ScriptDirectory.from_config(_config()).get_current_head()
    assert rev is not None
    return rev


def current(dsn: str) -> str | None:
    found, revision = _read_revision(dsn)
    if found:
        return revision
    from alembic.runtime.migration import MigrationContext

    engine = _engine(dsn)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _read_revision(dsn: str) -> tuple[bool, str | None]:
    """(True, revision) when one query settles it: no ``alembic_version`` table (None) or
    exactly one row. (False, None) otherwise (several heads): alembic decides."""
    url = sqlalchemy_url(dsn).replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return True, None
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    if len(rows) > 1:
        return False, None
    return True, (str(rows[0][0]) if rows else None)


def upgrade(dsn: str, revision: str = "head", out: Callable[[str], None] | None = None) -> None:
    from alembic import command

    _locked(dsn, lambda cfg: command.upgrade(cfg, revision), out)


def downgrade(dsn: str, revision: str, out: Callable[[str], None] | None = None) -> None:
    from alembic import command

    _locked(dsn, lambda cfg: command.downgrade(cfg, revision), out)


def history(verbose: bool, out: Callable[[str], None]) -> None:
    from alembic import command

    command.history(_config(out), verbose=verbose)


def _locked(dsn: str, action: Callable[[AlembicConfig], None],
            out: Callable[[str], None] | None) -> None:
    from sqlalchemy import text

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
        from alembic import command
        from alembic.runtime.migration import MigrationContext

        nonlocal before, ran
        before = MigrationContext.configure(cfg.attributes["connection"]).get_current_revision()
        if before != target:
            command.upgrade(cfg, "head")
            ran = True

    _locked(dsn, _upgrade_if_behind, out)
    return before, target, ran


def explain(exc: BaseException) -> str | None:
    """The operator's one line for a library error of the ``aegra db`` commands, or None
    when ``exc`` is not one (a bug: the caller shows its repr)::

        alembic CommandError (unknown revision, ...)      -> its message
        SQLAlchemy ArgumentError (unparseable URL)        -> "cannot be parsed"
        SQLAlchemy DBAPIError, psycopg.Error (refused,    -> the driver's first line
          auth, unknown database, ...)
    """
    from alembic.util import CommandError
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, CommandError):
        return _first_line(exc)
    if isinstance(exc, sa_exc.ArgumentError):  # its message may quote the URL: not shown
        return "the database URL cannot be parsed"
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        return _first_line(exc.orig)
    if isinstance(exc, (sa_exc.SQLAlchemyError, psycopg.Error)):
        return _first_line(exc)
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
