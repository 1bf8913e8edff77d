"""Ring 3, several processes on one database WITHOUT Redis (issue 11): two `aegra serve`
instances with ``AEGRA_CHANNEL=postgres`` share one queue (``aegra_jobs``, NOTIFY
wakeups), cancel each other's runs, serve each other's run streams (``aegra_run_events``)
and hear each other's thread events over LISTEN/NOTIFY.

Each instance runs one job at a time, so a run created on a busy instance can only start
quickly if the other instance's worker took it from the shared queue; heartbeats are far
apart, so only the NOTIFY bus can make a cross-instance cancel quick.
"""

from __future__ import annotations

import asyncio
import collections
import time

import psycopg
from langgraph_sdk import get_client

from tests.e2e.conftest import GRAPHS, base_env, write_project
from tests.e2e.test_distributed import executor, step_pids, steps_done, wait_for

ONE_JOB = {"WORKER_COUNT": "1", "N_JOBS_PER_WORKER": "1", "N_JOBS_PER_WORKER_MAX": "1"}


def test_two_processes_share_queue_and_cancels_over_postgres(start_server, database_url,
                                                             tmp_path):
    write_project(tmp_path, {"steps": f"{GRAPHS / 'steps.py'}:graph"})
    log = tmp_path / "steps.log"
    env = base_env(database_url, AEGRA_CHANNEL="postgres", STEPS_LOG=str(log),
                   LEASE_DURATION_SECONDS="60", HEARTBEAT_INTERVAL_SECONDS="20",
                   POSTGRES_POLL_INTERVAL_SECONDS="5", **ONE_JOB)
    assert "REDIS_BROKER_ENABLED" not in env
    b = start_server(env)
    cb = get_client(url=b.url)

    async def hold_b():
        thread = await cb.threads.create()
        run = await cb.runs.create(thread["thread_id"], "steps", input={"delay": 2})
        return thread["thread_id"], run["run_id"]

    long_tid, long_rid = asyncio.run(hold_b())
    assert executor(database_url, long_rid, [b]) is b  # B's one job slot is now taken
    a = start_server(env)

    # Created on busy B: only A's worker, woken through the shared queue, can run them.
    async def create_on_b():
        c = get_client(url=b.url)
        made = []
        for _ in range(3):
            thread = await c.threads.create()
            run = await c.runs.create(thread["thread_id"], "steps", input={"delay": 0.01})
            made.append((thread["thread_id"], run["run_id"]))
        return made

    started = time.monotonic()
    made = asyncio.run(create_on_b())

    async def join_on_a():
        c = get_client(url=a.url)
        return [(await c.runs.join(tid, rid), await c.runs.get(tid, rid))
                for tid, rid in made]

    for result, run in asyncio.run(join_on_a()):
        assert run["status"] == "success"
        assert result["done"] == [0, 1, 2, 3, 4]
    assert time.monotonic() - started < 8  # well before B's run (5 x 2 s) could free it
    for tid, _rid in made:  # each executed once, by A: every step logged exactly once
        assert collections.Counter(steps_done(log, tid)) == dict.fromkeys(range(5), 1)
        assert step_pids(log, tid) == {a.proc.pid}

    # A cancel sent to A stops the run executing on B, through NOTIFY aegra_cancel
    # (the heartbeat that would otherwise deliver it is 20 s away).
    async def cancel_on_a():
        await get_client(url=a.url).runs.cancel(long_tid, long_rid)

    t0 = time.monotonic()
    asyncio.run(cancel_on_a())
    wait_for(lambda: status(database_url, long_rid) == "interrupted", 3, "the cancel on B")
    assert time.monotonic() - t0 < 3
    assert '"run.cancel_received"' in b.logs()
    assert len(steps_done(log, long_tid)) < 5

    # A thread stream joined on A hears a state write made on B (NOTIFY aegra_thread).
    # Live only, so B writes until A's stream, open by then, has one.
    async def state_update_across():
        ca, cb = get_client(url=a.url), get_client(url=b.url)

        async def read():
            async for part in await ca.threads.join_stream(
                    long_tid, stream_mode=["state_update"]):
                if part.event == "state_update":
                    return part
            raise AssertionError("the stream ended without a state_update")

        reader = asyncio.ensure_future(read())
        for i in range(50):
            await cb.threads.update_state(long_tid, {"delay": i}, as_node="s0")
            done, _ = await asyncio.wait([reader], timeout=0.2)
            if done:
                return reader.result()
        reader.cancel()
        raise AssertionError("no state_update reached A")

    part = asyncio.run(state_update_across())
    assert part.data["thread_id"] == long_tid
    assert isinstance(part.data["state"]["values"]["delay"], int)

    # Run streams are shared (aegra_run_events): a run executing on one process streams
    # from the other, in order and to its end; a /wait on the busy process gets the
    # output of a run that only the other one can execute; a stream resumed by id on
    # the other process continues without duplicates.
    async def create_long():
        c = get_client(url=b.url)
        thread = await c.threads.create()
        run = await c.runs.create(thread["thread_id"], "steps", input={"delay": 0.3},
                                  stream_mode=["values"])
        return thread["thread_id"], run["run_id"]

    tid, rid = asyncio.run(create_long())
    runner = executor(database_url, rid, [a, b])
    other = a if runner is b else b

    async def across():
        streamer, waiter = get_client(url=other.url), get_client(url=runner.url)

        async def follow():
            return [p async for p in streamer.runs.join_stream(tid, rid)]

        async def wait_elsewhere():  # the runner's one slot is taken: ``other`` runs it
            thread = await waiter.threads.create()
            return await waiter.runs.wait(thread["thread_id"], "steps",
                                          input={"delay": 0.01})

        parts, output = await asyncio.gather(follow(), wait_elsewhere())
        resumed = [p async for p in streamer.runs.join_stream(
            tid, rid, last_event_id=parts[2].id)]
        return parts, output, resumed

    parts, output, resumed = asyncio.run(across())
    values = [p.data["done"] for p in parts if p.event == "values" and "done" in p.data]
    assert values == [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4]]
    assert output["done"] == [0, 1, 2, 3, 4]
    assert [p.id for p in resumed] == [p.id for p in parts[3:]]
    assert resumed and all(p.id for p in resumed)


def status(database_url, run_id):
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
    return row[0] if row else None
