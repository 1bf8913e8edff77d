"""Shared helpers of the benchmark scripts: PostgreSQL, /proc readers, statistics.

Not a test module and not part of the package: the scripts in ``bench/`` import it by
path (they put ``bench/`` on ``sys.path`` when run as ``python bench/<name>.py``).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- /proc -----------------------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def tree_pids(root_pid: int) -> list[int]:
    """A process and its direct children (PostgreSQL: postmaster + backends; ``aegra serve
    --processes``: the parent + its servers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(entry) == root_pid or ppid == root_pid:
            pids.append(int(entry))
    return pids


def tree_cpu_s(root_pid: int) -> float:
    """CPU of a process and its direct children.

    Processes that exit during a measurement take their CPU with them; the pools keep
    theirs open, so deltas are meaningful for a running server."""
    total = 0.0
    for pid in tree_pids(root_pid):
        try:
            total += cpu_s(pid)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total


def self_cpu_s() -> float:
    return time.process_time()


# -- statistics ------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


# -- PostgreSQL --------------------------------------------------------------------------------
def with_db(dsn: str, name: str) -> str:
    """Same server, another database (URL form; works for unix-socket DSNs too)."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    host = str(params.get("host", "localhost"))
    user = params.get("user", "postgres")
    password = params.get("password", "")
    port = params.get("port", "5432")
    auth = f"{user}:{password}" if password else f"{user}:"
    if host.startswith("/"):
        return f"postgresql://{auth}@/{name}?host={host}&port={port}"
    return f"postgresql://{auth}@{host}:{port}/{name}"


class Postgres:
    """The database server the benchmark uses: embedded (pgserver, ours alone) or given."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.embedded = url is None
        self._handle: Any = None
        self._dir: Path | None = None
        self.admin_dsn = ""
        self.postmaster_pid: int | None = None

    def __enter__(self) -> Postgres:
        if self.url:
            self.admin_dsn = self.url
        else:
            import psycopg

            from aegra.adapters.postgres.embedded import start

            # A short path: unix socket paths are limited to ~107 bytes.
            self._dir = Path(tempfile.mkdtemp(prefix="aegra-bench-"))
            self._handle, self.admin_dsn = start(self._dir, "postgres")
            # A throwaway cluster: no fsync (as the test suite), so the disk does not
            # dominate latencies; CPU figures do not depend on it.
            with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                for setting in ("fsync = off", "synchronous_commit = off",
                                "full_page_writes = off"):
                    conn.execute(f"ALTER SYSTEM SET {setting}")
                conn.execute("SELECT pg_reload_conf()")
            self.postmaster_pid = self._postmaster_pid()
        return self

    def _postmaster_pid(self) -> int | None:
        if self._handle is None:
            return None
        pidfile = Path(self._handle.pgdata) / "postmaster.pid"
        try:
            return int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def log_path(self) -> Path | None:
        return Path(self._handle.log) if self._handle is not None else None

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return with_db(self.admin_dsn, name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def xacts(self, dbname: str) -> int:
        """Committed + rolled back transactions of a database so far (pg_stat_database).

        Read from another database, so this query is not counted. Backends flush their
        counters when idle, at most once a second and within 10 s: wait before reading
        (see ``settle_stats``)."""
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                (dbname,)).fetchone()
        return int(row[0]) if row else 0

    def cpu_s(self) -> float | None:
        if self.postmaster_pid is None:
            return None
        return tree_cpu_s(self.postmaster_pid)

    def log_statements(self, on: bool) -> None:
        """Log every statement with its backend pid and virtual transaction id (or stop).

        ALTER SYSTEM + reload: the embedded cluster only, never a shared server."""
        import psycopg

        assert self.embedded, "ALTER SYSTEM only on the benchmark's own cluster"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            if on:
                conn.execute("ALTER SYSTEM SET log_statement = 'all'")
                conn.execute("ALTER SYSTEM SET log_line_prefix = '%m [%p] {%v} '")
            else:
                conn.execute("ALTER SYSTEM RESET log_statement")
                conn.execute("ALTER SYSTEM RESET log_line_prefix")
            conn.execute("SELECT pg_reload_conf()")

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            try:
                self._handle.cleanup()
            finally:
                if self._dir is not None:
                    shutil.rmtree(self._dir, ignore_errors=True)


STATS_FLUSH_S = 11.5  # idle backends flush pg_stat counters within PGSTAT_IDLE_INTERVAL (10 s)


@contextmanager
def phase(title: str) -> Iterator[None]:
    print(f"\n== {title}", flush=True)
    t0 = time.monotonic()
    yield
    print(f"   ({time.monotonic() - t0:.1f} s)", flush=True)
