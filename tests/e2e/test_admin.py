"""Ring 3, operations (spec operations.md §3-§5) against two real ``aegra serve``
instances sharing one database: maintenance is deployment-wide (the other instance
refuses runs within 5 s, reads and running runs go on, crons skip and do not catch up),
stats agree across instances, and the log level changes at once.

One pair of servers for the module: starting them costs most of the time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client

from tests.conftest import _with_db
from tests.e2e.conftest import GRAPHS, ServerProcess, base_env, write_project
from tests.e2e.runs_support import until

TOKEN = "e2e-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RUN = {"assistant_id": "agent", "input": {"messages": []}}


@pytest.fixture(scope="module")
def pair(pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[ServerProcess, ServerProcess, str]]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_db(pg_admin_dsn, name)
    workdir = tmp_path_factory.mktemp("admin")
    write_project(workdir, {"agent": f"{GRAPHS / 'echo.py'}:graph",
                            "slow": f"{GRAPHS / 'slow.py'}:graph"})
    env = base_env(dsn, AEGRA_ADMIN_TOKEN=TOKEN, WORKER_COUNT="2", N_JOBS_PER_WORKER="3",
                   CRON_ALLOW_SECONDS_SCHEDULE="true", AEGRA__CRON__TICK_INTERVAL_S="0.2")
    servers = [ServerProcess(workdir, env), ServerProcess(workdir, env)]
    for server in servers:
        server.start(wait_ready=False)
    try:
        for server in servers:
            server.wait_ready()
        yield servers[0], servers[1], dsn
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest,
                     pair: tuple[ServerProcess, ServerProcess, str]) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for server in pair[:2]:
            print(f"\n--- server {server.port} log ---\n{server.logs()}")


def _db_now(dsn: str) -> Any:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]


def _occurrences(dsn: str, cron_id: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT execution_params->'cron'->>'scheduled_at' FROM runs "
                            "WHERE cron_id = %s", (cron_id,)).fetchall()
    return [r[0] for r in rows if r[0] is not None]  # None: the run made at creation


def test_maintenance_is_deployment_wide(pair: tuple[ServerProcess, ServerProcess, str]) -> None:
    asyncio.run(_maintenance_is_deployment_wide(pair))


async def _maintenance_is_deployment_wide(pair: tuple[ServerProcess, ServerProcess, str]) -> None:
    a_srv, b_srv, dsn = pair
    a, b = get_client(url=a_srv.url), get_client(url=b_srv.url)
    async with httpx.AsyncClient(timeout=10) as http:
        tid = (await b.threads.create())["thread_id"]
        running = await b.runs.create(tid, "slow", input={"delay": 1.5})
        cron = await a.crons.create("agent", schedule="* * * * * *", input=RUN["input"],
                                    on_run_completed="keep")

        async def fired_once() -> bool:
            return bool(_occurrences(dsn, cron["cron_id"]))
        await until(fired_once, within=5)
        await until(lambda: _is(b.runs.get(tid, running["run_id"]), "running"), within=5)

        switched = await http.post(f"{a_srv.url}/admin/maintenance", json={"enabled": True},
                                   headers=AUTH)
        assert switched.status_code == 200 and switched.json()["enabled"] is True
        on_at, t0 = _db_now(dsn), time.monotonic()

        async def refused_on_b() -> bool:
            r = await http.post(f"{b_srv.url}/runs", json=RUN)
            return r.status_code == 503
        await until(refused_on_b, within=5, interval=0.2)  # each miss makes a run
        assert time.monotonic() - t0 < 5
        got = await http.get(f"{b_srv.url}/admin/maintenance", headers=AUTH)
        assert got.json() == {"enabled": True}
        for srv in (a_srv, b_srv):  # every run-creating endpoint, on both
            for path in (f"/threads/{tid}/runs", f"/threads/{tid}/runs/wait",
                         f"/threads/{tid}/runs/stream", "/runs", "/runs/wait",
                         "/runs/stream"):
                r = await http.post(srv.url + path, json=RUN)
                assert r.status_code == 503, (srv.port, path, r.text)
                assert int(r.headers["Retry-After"]) >= 1
                assert "maintenance" in r.text
            assert (await http.get(srv.url + "/ready")).status_code == 200
        # Reads go on, including the join stream of the run that keeps running.
        assert (await http.get(f"{b_srv.url}/threads/{tid}")).status_code == 200
        assert (await http.get(f"{b_srv.url}/threads/{tid}/state")).status_code == 200
        assert (await http.post(f"{b_srv.url}/threads/search", json={})).status_code == 200
        assert (await http.post(f"{b_srv.url}/threads/{tid}/history",
                                json={})).status_code == 200
        listed = (await http.get(f"{b_srv.url}/threads/{tid}/runs")).json()
        assert [r["run_id"] for r in listed] == [running["run_id"]]  # nothing created
        joined = [part.event async for part in b.runs.join_stream(tid, running["run_id"])]
        assert joined and joined[-1] == "end"
        assert (await b.runs.get(tid, running["run_id"]))["status"] == "success"

        # Crons skip: no occurrence once both instances see the switch (B refuses: its
        # cached value, which its cron ticker shares, is on), and none caught up later.
        quiet_from = _db_now(dsn)
        await asyncio.sleep(3.5)  # several 1 s occurrences, ticks every 0.2 s
        # An occurrence due just before the switch went off may fire a tick later (the
        # ticker polls): only what was due 1.5 s before then must have been skipped.
        quiet_to = _db_now(dsn) - dt.timedelta(seconds=1.5)
        off = await http.post(f"{b_srv.url}/admin/maintenance", json={"enabled": False},
                              headers=AUTH)
        assert off.status_code == 200 and off.json()["enabled"] is False
        off_at = _db_now(dsn)

        async def fired_again() -> bool:
            return any(_parse(i) > off_at for i in _occurrences(dsn, cron["cron_id"]))
        await until(fired_again, within=5)

        async def a_accepts() -> bool:
            # A's cached switch (1 s) may still say on: the promise is "within 5 s"
            answer = await http.post(f"{a_srv.url}/runs", json=RUN)
            assert answer.status_code in (200, 503), answer.text
            return answer.status_code == 200
        await until(a_accepts, within=5)
        await a.crons.update(cron["cron_id"], enabled=False)
        instants = [_parse(i) for i in _occurrences(dsn, cron["cron_id"])]
        assert min(instants) < on_at  # it fired before maintenance, and after
        skipped = [i for i in instants if quiet_from <= i <= quiet_to]
        assert skipped == [], skipped
        assert len(instants) == len(set(instants))


def _parse(iso: str) -> Any:
    return dt.datetime.fromisoformat(iso)


async def _is(run: Any, status: str) -> bool:
    return (await run)["status"] == status


def test_stats_agree_across_instances(pair: tuple[ServerProcess, ServerProcess, str]) -> None:
    asyncio.run(_stats_agree_across_instances(pair))


async def _stats_agree_across_instances(pair: tuple[ServerProcess, ServerProcess, str]) -> None:
    a_srv, b_srv, dsn = pair
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{a_srv.url}/admin/stats")).status_code == 401
        assert (await http.get(f"{a_srv.url}/admin/stats",
                               headers={"Authorization": "Bearer nope"})).status_code == 401

        async def settled() -> bool:
            with psycopg.connect(dsn) as conn:
                busy = conn.execute("SELECT count(*) FROM runs WHERE status IN "
                                    "('pending', 'running')").fetchone()
            return busy is not None and busy[0] == 0
        await until(settled, within=10)
        with psycopg.connect(dsn) as conn:
            counts = dict(conn.execute(
                "SELECT status, count(*) FROM runs GROUP BY status").fetchall())
        version = (await http.get(f"{a_srv.url}/info")).json()["version"]
        seen = []
        for srv in (a_srv, b_srv):
            r = await http.get(f"{srv.url}/admin/stats", headers=AUTH)
            assert r.status_code == 200
            stats = r.json()
            assert stats["runs_by_status"] == {"pending": 0, "running": 0, "success": 0,
                                               "error": 0, **counts}
            assert (stats["active_runs"], stats["pending_runs"]) == (0, 0)
            workers = stats["workers"]
            # capacity is adaptive: N_JOBS_PER_WORKER 3 is its floor, the default
            # N_JOBS_PER_WORKER_MAX 100 its ceiling, per worker loop.
            assert (workers["count"], workers["capacity_floor"], workers["capacity_max"],
                    workers["busy"]) == (2, 6, 200, 0)
            assert 6 <= workers["capacity"] <= 200
            assert stats["crons"]["enabled"] == 0 and stats["crons"]["due"] == 0
            assert stats["instance"]["version"] == version
            assert stats["instance"]["uptime_seconds"] > 0
            seen.append(stats["instance"]["id"])
        assert seen[0] != seen[1]


def test_log_level_changes_at_once(pair: tuple[ServerProcess, ServerProcess, str]) -> None:
    asyncio.run(_log_level_changes_at_once(pair))


async def _log_level_changes_at_once(pair: tuple[ServerProcess, ServerProcess, str]) -> None:
    a_srv, _, _ = pair
    client = get_client(url=a_srv.url)

    def debug_events(since: int) -> list[str]:
        lines = a_srv.log_path.read_text().splitlines()[since:]
        out = []
        for line in lines:
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # a line still being written, or not ours
            if isinstance(doc, dict) and doc.get("level") == "debug":
                out.append(doc.get("event"))
        return out

    async with httpx.AsyncClient(timeout=10) as http:
        url = f"{a_srv.url}/admin/log-level"
        assert (await http.get(url, headers=AUTH)).json() == {"level": "INFO"}
        bad = await http.put(url, json={"level": "CHATTY"}, headers=AUTH)
        assert bad.status_code == 422 and bad.json()["field"] == "level"
        start = len(a_srv.log_path.read_text().splitlines())
        await client.runs.wait(None, "agent", input=RUN["input"])
        assert debug_events(start) == []
        assert (await http.put(url, json={"level": "DEBUG"}, headers=AUTH)).json() == {
            "level": "DEBUG"}
        start = len(a_srv.log_path.read_text().splitlines())
        await client.runs.wait(None, "agent", input=RUN["input"])
        await until(lambda: _async({"http.request", "run.claimed"}
                                   <= set(debug_events(start))), within=5)
        assert (await http.put(url, json={"level": "INFO"}, headers=AUTH)).json() == {
            "level": "INFO"}
        start = len(a_srv.log_path.read_text().splitlines())
        await client.runs.wait(None, "agent", input=RUN["input"])
        assert debug_events(start) == []


async def _async(value: bool) -> bool:
    return value
