"""Ring 3, distributed: two `aegra serve` instances sharing PostgreSQL and Redis.

SIGKILL of the instance executing a run, cross-instance cancel, SIGTERM drain, and a
Redis outage. Lease and reaper intervals are short so recovery fits in a test.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import time

import httpx
import psycopg
from langgraph_sdk import get_client

from tests.e2e.conftest import GRAPHS, base_env, write_project

FAST = {
    "LEASE_DURATION_SECONDS": "3", "HEARTBEAT_INTERVAL_SECONDS": "1",
    "REAPER_INTERVAL_SECONDS": "1", "POSTGRES_POLL_INTERVAL_SECONDS": "0.5",
    "STUCK_PENDING_THRESHOLD_SECONDS": "5", "WORKER_DRAIN_TIMEOUT": "1",
}


def setup(tmp_path, database_url, redis_url, **extra):
    write_project(tmp_path, {"agent": f"{GRAPHS / 'echo.py'}:graph",
                             "steps": f"{GRAPHS / 'steps.py'}:graph"})
    log = tmp_path / "steps.log"
    env = base_env(database_url, REDIS_BROKER_ENABLED="true", REDIS_URL=redis_url,
                   STEPS_LOG=str(log), **{**FAST, **extra})
    return env, log


def executor(database_url, run_id, servers, timeout=15.0):
    """The server process whose worker holds the run's claim."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT claimed_by FROM runs WHERE run_id = %s",
                               (run_id,)).fetchone()
        if row and row[0]:
            pid = int(row[0].split(":")[1])
            return next(s for s in servers if s.proc.pid == pid)
        time.sleep(0.05)
    raise AssertionError("run never claimed")


def steps_done(log, thread_id):
    if not log.exists():
        return []
    return [int(line.split()[1]) for line in log.read_text().splitlines()
            if line.split()[0] == thread_id]


def step_pids(log, thread_id):
    """The server processes that ran the thread's steps (from the steps log)."""
    if not log.exists():
        return set()
    return {int(parts[2]) for parts in map(str.split, log.read_text().splitlines())
            if parts[0] == thread_id}


def checkpointed_step(database_url, thread_id):
    """The highest superstep of the thread's committed root checkpoints (-2 if none).

    With the default ``durability="async"`` a step's checkpoint is written while the next
    step already runs, so a step can be in the log before its checkpoint is committed.
    """
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT max((metadata->>'step')::int) FROM checkpoints"
            " WHERE thread_id = %s AND checkpoint_ns = ''", (thread_id,)).fetchone()
    return -2 if row is None or row[0] is None else row[0]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_mid_run_resumes_on_the_other_instance(start_server, database_url,
                                                       private_redis, tmp_path):
    env, log = setup(tmp_path, database_url, private_redis.url)
    servers = [start_server(env, wait_ready=False), start_server(env, wait_ready=False)]
    for server in servers:
        server.wait_ready()
    client = get_client(url=servers[0].url)

    async def create():
        thread = await client.threads.create()
        run = await client.runs.create(thread["thread_id"], "steps", input={"delay": 0.7})
        return thread["thread_id"], run["run_id"]

    tid, rid = asyncio.run(create())
    victim = executor(database_url, rid, servers)
    survivor = next(s for s in servers if s is not victim)
    wait_for(lambda: len(steps_done(log, tid)) >= 2, 20, "two completed steps")
    # Superstep 2 is the checkpoint taken after s1: s0 and s1 are then durably done.
    wait_for(lambda: checkpointed_step(database_url, tid) >= 2, 20, "s1's checkpoint")
    victim.proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.proc.wait(5)

    async def finish():
        c = get_client(url=survivor.url)
        result = await c.runs.join(tid, rid)
        return result, await c.runs.get(tid, rid)

    result, run = asyncio.run(finish())
    recovered_in = time.monotonic() - killed_at
    assert run["status"] == "success"
    assert result["done"] == [0, 1, 2, 3, 4]
    counts = collections.Counter(steps_done(log, tid))
    assert set(counts) == {0, 1, 2, 3, 4}
    # Checkpointed steps never run again; only the step in flight at the kill (s2, or
    # s3 if s2 finished and its checkpoint was still being written) may repeat.
    assert sum(counts.values()) - 5 <= 1, counts
    assert counts[0] == 1 and counts[1] == 1
    # lease 3 s + heartbeat 1 s + reaper 1 s + the remaining steps (~3 x 0.7 s)
    assert recovered_in < 3 + 1 + 1 + 5 * 0.7 + 3


def test_cancel_on_one_instance_stops_the_run_on_the_other(start_server, database_url,
                                                           private_redis, tmp_path):
    # Heartbeats far apart: only the Redis cancel bus can make the cancel this quick.
    env, log = setup(tmp_path, database_url, private_redis.url,
                     LEASE_DURATION_SECONDS="60", HEARTBEAT_INTERVAL_SECONDS="20")
    b = start_server(env)
    cb = get_client(url=b.url)

    async def create():
        thread = await cb.threads.create()
        run = await cb.runs.create(thread["thread_id"], "steps", input={"delay": 2})
        return thread["thread_id"], run["run_id"]

    tid, rid = asyncio.run(create())
    assert executor(database_url, rid, [b]) is b
    a = start_server(env)  # started after the claim: the run executes on B

    async def cancel():
        ca = get_client(url=a.url)
        started = time.monotonic()
        await ca.runs.cancel(tid, rid, wait=True)
        elapsed = time.monotonic() - started
        return elapsed, await ca.runs.get(tid, rid)

    elapsed, run = asyncio.run(cancel())
    assert run["status"] == "interrupted"
    assert elapsed < 3
    assert '"run.cancel_received"' in b.logs()
    at_cancel = len(steps_done(log, tid))
    assert at_cancel < 5
    time.sleep(2.5)  # longer than a step: a run still going would log one more
    assert len(steps_done(log, tid)) == at_cancel

    # A thread stream joined on A hears a state write made on B (Redis' thread channel).
    async def state_update_across():
        ca, cb = get_client(url=a.url), get_client(url=b.url)  # this loop's clients
        held = await cb.runs.create(tid, "steps", input={"delay": 60})
        parts = []
        async for part in await ca.threads.join_stream(
                tid, stream_mode=["lifecycle", "state_update"]):
            parts.append(part)
            if len(parts) == 1:  # A's stream is open: end the run, write on B
                await cb.runs.cancel(tid, held["run_id"], wait=True)
                await cb.threads.update_state(tid, {"delay": 0.5}, as_node="s0")
            if part.event == "state_update":
                return parts
        raise AssertionError(f"the stream ended without it: {parts}")

    parts = asyncio.run(state_update_across())
    assert [p.event for p in parts] == ["metadata", "end", "metadata", "state_update"]
    assert parts[-1].data["thread_id"] == tid
    assert parts[-1].data["state"]["values"]["delay"] == 0.5


def test_sigterm_drain_hands_runs_over_without_losing_any(start_server, database_url,
                                                          private_redis, tmp_path):
    env, log = setup(tmp_path, database_url, private_redis.url)
    servers = [start_server(env, wait_ready=False), start_server(env, wait_ready=False)]
    for server in servers:
        server.wait_ready()
    client = get_client(url=servers[0].url)

    async def create():
        out = []
        for _ in range(4):
            thread = await client.threads.create()
            run = await client.runs.create(thread["thread_id"], "steps", input={"delay": 0.5})
            out.append((thread["thread_id"], run["run_id"]))
        return out

    runs = asyncio.run(create())
    victim = executor(database_url, runs[0][1], servers)
    survivor = next(s for s in servers if s is not victim)
    wait_for(lambda: len(steps_done(log, runs[0][0])) >= 1, 20, "a completed step")
    victim.signal(signal.SIGTERM)
    assert victim.wait(10) == 0

    async def finish():
        c = get_client(url=survivor.url)
        return [await c.runs.join(tid, rid) for tid, rid in runs], [
            (await c.runs.get(tid, rid))["status"] for tid, rid in runs]

    results, statuses = asyncio.run(finish())
    assert statuses == ["success"] * 4
    assert all(r["done"] == [0, 1, 2, 3, 4] for r in results)
    with psycopg.connect(database_url) as conn:
        retries = conn.execute("SELECT max(retries) FROM runs").fetchone()[0]
    assert retries == 0  # handed back, not crashed: no retry spent
    assert '"run.handed_back"' in victim.logs()
    for tid, _ in runs:
        counts = collections.Counter(steps_done(log, tid))
        assert sum(counts.values()) - 5 <= 1, counts


def test_redis_outage_falls_back_to_polling_and_recovers(start_server, database_url,
                                                         private_redis, tmp_path):
    env, _ = setup(tmp_path, database_url, private_redis.url)
    server = start_server(env)

    async def one(text):
        client = get_client(url=server.url)  # one per event loop
        return await client.runs.wait(None, "agent", input={"messages": [
            {"role": "user", "content": text}]})

    assert asyncio.run(one("before"))["messages"][-1]["content"] == "echo: before"
    private_redis.stop()
    assert asyncio.run(one("during"))["messages"][-1]["content"] == "echo: during"
    health = httpx.get(server.url + "/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "degraded" and body["components"]["redis"] == "degraded"
    assert body["components"]["database"] == "healthy" and body["details"]["redis"]["error"]
    assert httpx.get(server.url + "/ready").status_code == 200
    private_redis.start()
    wait_for(lambda: httpx.get(server.url + "/health").json()["status"] == "healthy", 10,
             "redis back")
    assert asyncio.run(one("after"))["messages"][-1]["content"] == "echo: after"
    assert '"redis.queue_unavailable"' in server.logs()
