"""Operations §1.4: a real `aegra serve` outlives its database and recovers with it.

The database is taken away as a drop would be (new sessions fail with "database does not
exist"): closed to new sessions, its sessions ended, renamed; it is given back by renaming
it back. Meanwhile ``/health`` answers 503 ``unhealthy`` and ``/live`` 200 for the whole
outage, the actors waiting it out instead of crash-looping (the old restart policy ended
the process after ~14 s at the default backoff; with the fast backoff and low
``max_restarts`` set here it would have ended it within a second or two, so a 6 s outage
proves it); afterwards the server is healthy again without a restart.
"""

from __future__ import annotations

import time

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict

from tests.e2e.conftest import base_env

OUTAGE_S = 6.0


def _rename(admin_dsn: str, old: str, new: str) -> None:
    """Rename a database under live clients: refuse new sessions, end the old ones."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{old}" ALLOW_CONNECTIONS false')
        deadline = time.monotonic() + 10
        while True:
            # pg_terminate_backend(pid, timeout) waits for each backend to exit (PG 14+).
            conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (old,))
            try:
                conn.execute(f'ALTER DATABASE "{old}" RENAME TO "{new}"')
                break
            except psycopg.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise
        conn.execute(f'ALTER DATABASE "{new}" ALLOW_CONNECTIONS true')


def _wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _health(url: str) -> httpx.Response:
    return httpx.get(url + "/health", timeout=10)


def test_database_outage_is_unhealthy_live_and_survived(start_server, database_url,
                                                        pg_admin_dsn):
    # Short reaper/heartbeat/cron intervals: every actor hits the outage within a second.
    # A fast restart policy: crashes would exhaust max_restarts within the outage.
    # Retries while the store is away are capped at 0.5 s (5 s by default), so the
    # actors are back within half a second of it.
    server = start_server(base_env(database_url, REAPER_INTERVAL_SECONDS="0.5",
                                   HEARTBEAT_INTERVAL_SECONDS="1",
                                   AEGRA__SUPERVISOR__MAX_RESTARTS="2",
                                   AEGRA__SUPERVISOR__BACKOFF_INITIAL_S="0.05",
                                   AEGRA__SUPERVISOR__BACKOFF_MAX_S="0.2",
                                   AEGRA__SUPERVISOR__OUTAGE_BACKOFF_MAX_S="0.5"))
    before = _health(server.url)
    assert before.status_code == 200, before.text
    assert before.json()["status"] == "healthy"
    name = conninfo_to_dict(database_url)["dbname"]
    away = f"{name}_away"
    _rename(pg_admin_dsn, name, away)
    until = time.monotonic() + OUTAGE_S  # the outage lasts this long from the rename
    try:
        _wait_for(lambda: _health(server.url).status_code == 503, 15, "/health 503")
        down = _health(server.url)
        body = down.json()
        assert body["status"] == "unhealthy", body
        assert body["components"]["database"] not in ("healthy", None), body
        assert all(isinstance(v, str) for v in body["components"].values()), body
        assert body["details"]["database"]["error"], body
        # The process stays up and live for the whole outage; the actors wait, not crash.
        while True:
            assert server.proc.poll() is None, server.logs()[-3000:]
            assert httpx.get(server.url + "/live", timeout=5).status_code == 200
            if time.monotonic() >= until:
                break
            time.sleep(0.5)
        assert '"actor.store_unavailable"' in server.logs()
        assert '"actor.crash_loop"' not in server.logs()
        assert _health(server.url).json()["details"]["actors"]["reaper"]["status"] == "waiting"
    finally:
        _rename(pg_admin_dsn, away, name)
    _wait_for(lambda: _health(server.url).status_code == 200, 15, "/health 200 again")

    def recovered() -> bool:
        body = _health(server.url).json()
        return body["status"] == "healthy" and body["components"]["workers"] == "healthy"
    # The actors retry with a backoff capped at 0.5 s here: back within one cap.
    _wait_for(recovered, 15, "workers healthy again")
    assert server.proc.poll() is None
