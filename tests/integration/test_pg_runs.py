"""Ring 2: the PostgreSQL run/lease adapters and the fenced checkpointer, for real."""

from __future__ import annotations

import psycopg
import pytest
import trio

from aegra.adapters import aio
from aegra.adapters.langgraph.fenced import FencedOut, FencedSaver, fence
from aegra.adapters.langgraph.schema import ensure_langgraph_tables
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.leases import PgLeases
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.runs import NewRun, PgRuns
from aegra.domain.errors import Conflict
from aegra.domain.ports import Outcome


@pytest.fixture
def migrated(database_url):
    migrate.ensure_migrated(database_url)
    ensure_langgraph_tables(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO assistant (assistant_id, graph_id, name) VALUES ('a', 'g', 'g')")
    return database_url


async def _pool(dsn):
    pool = PgPool(dsn, min_size=1, max_size=6)
    await pool.open()
    return pool


def new(thread_id, strategy="enqueue", **kw):
    return NewRun(thread_id=thread_id, assistant_id="a", graph_id="g", params={"x": 1},
                  multitask_strategy=strategy, if_not_exists="create", **kw)


async def test_racing_claims_of_one_thread_let_exactly_one_run(migrated):
    async with aio.open_loop():
        pool = await _pool(migrated)
        runs = PgRuns(pool)
        first = (await runs.create(new("t1"))).run["run_id"]
        second = (await runs.create(new("t1"))).run["run_id"]
        other = (await runs.create(new("t2"))).run["run_id"]
        results: dict[str, object] = {}

        async def claim(run_id, owner):
            results[run_id] = await runs.claim(run_id, owner, 30)

        for _ in range(3):  # a few rounds: the race must never let both through
            results.clear()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(claim, second, "B")  # FIFO: second may not start first
                nursery.start_soon(claim, first, "A")
                nursery.start_soon(claim, other, "C")
            if results[first] is not None:
                break
        assert results[second] is None
        assert results[first] is not None and results[first].attempt == 1
        assert results[other] is not None  # other threads are not held up
        assert await runs.claim(second, "B", 30) is None  # thread busy
        written, next_run = await runs.finish(results[first], "A",
                                              Outcome(status="success", values={"v": 1}),
                                              {"v": 1}, {})
        assert written and next_run == second
        claimed = await runs.claim(second, "B", 30)
        assert claimed is not None and claimed.params == {"x": 1}
        thread = await pool.fetchrow('SELECT status, "values" FROM thread WHERE thread_id = $1',
                                     "t1")
        assert thread == {"status": "busy", "values": {"v": 1}}
        await pool.close()


async def test_reject_conflicts_and_interrupt_requests_cancel(migrated):
    async with aio.open_loop():
        pool = await _pool(migrated)
        runs = PgRuns(pool)
        running = (await runs.create(new("t"))).run["run_id"]
        assert await runs.claim(running, "A", 30)
        with pytest.raises(Conflict, match="already running"):
            await runs.create(new("t", "reject"))
        created = await runs.create(new("t", "interrupt"))
        assert created.cancelled.running == [running]
        row = await pool.fetchrow("SELECT cancel_action FROM runs WHERE run_id = $1", running)
        assert row == {"cancel_action": "interrupt"}  # persisted for listeners that reconnect
        await pool.close()


async def test_finish_and_release_are_fenced_by_owner_and_attempt(migrated):
    async with aio.open_loop():
        pool = await _pool(migrated)
        runs, leases = PgRuns(pool), PgLeases(pool)
        run_id = (await runs.create(new("t"))).run["run_id"]
        a = await runs.claim(run_id, "A", 0.2)
        await trio.sleep(0.4)  # A's lease expires; the reaper hands the run on
        reaped = await leases.reap(max_retries=3, stuck_pending_s=3600)
        assert reaped.requeue == [run_id]
        b = await runs.claim(run_id, "B", 30)
        assert b.attempt == 2
        assert await leases.extend("A", [run_id], 30) == {}
        assert await leases.extend("B", [run_id], 30) == {run_id: None}
        assert await runs.finish(a, "A", Outcome(status="success"), None, {}) == (False, None)
        assert not await runs.release(a, "A")
        assert (await runs.finish(b, "B", Outcome(status="success"), None, {}))[0]
        row = await pool.fetchrow("SELECT status, retries, attempt FROM runs WHERE run_id = $1",
                                  run_id)
        assert row == {"status": "success", "retries": 1, "attempt": 2}
        await pool.close()


async def test_checkpoint_writes_are_fenced_by_the_claim(migrated):
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from aegra.adapters.aio import call

    async with aio.open_loop():
        pool = await _pool(migrated)
        runs = PgRuns(pool)
        run_id = (await runs.create(new("t"))).run["run_id"]
        claimed = await runs.claim(run_id, "A", 30)

        async def write(owner, attempt, checkpoint_id):
            from langgraph.checkpoint.base import empty_checkpoint

            lg_pool = AsyncConnectionPool(migrated, open=False, kwargs={
                "autocommit": True, "prepare_threshold": None, "row_factory": dict_row})
            await lg_pool.open()
            try:
                saver = FencedSaver(lg_pool)
                fence(run_id, owner, attempt)
                checkpoint = {**empty_checkpoint(), "id": checkpoint_id}
                config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
                await saver.aput(config, checkpoint, {"source": "loop", "step": 0}, {})
            finally:
                await lg_pool.close()

        await call(write, "A", claimed.attempt, "1ef00000-0000-6000-8000-000000000001")
        with pytest.raises(FencedOut):
            await call(write, "A", claimed.attempt + 1, "1ef00000-0000-6000-8000-000000000002")
        with pytest.raises(FencedOut):
            await call(write, "B", claimed.attempt, "1ef00000-0000-6000-8000-000000000003")
        count = await pool.fetchval("SELECT count(*) FROM checkpoints WHERE thread_id = 't'")
        assert count == 1
        await pool.close()


async def test_blob_and_pending_writes_are_fenced_as_a_whole(migrated):
    """Checkpoints with blobs (executemany) and pending writes: a lost claim writes none
    of it, a held claim all of it (pins the fence's atomicity whatever the saver's
    transaction and pipeline shape)."""
    from langgraph.checkpoint.base import empty_checkpoint
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from aegra.adapters.aio import call

    async with aio.open_loop():
        pool = await _pool(migrated)
        runs = PgRuns(pool)
        run_id = (await runs.create(new("t"))).run["run_id"]
        claimed = await runs.claim(run_id, "A", 30)
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}

        async def write(attempt, checkpoint_id, version, writes_only=None):
            lg_pool = AsyncConnectionPool(migrated, open=False, kwargs={
                "autocommit": True, "prepare_threshold": None, "row_factory": dict_row})
            await lg_pool.open()
            try:
                saver = FencedSaver(lg_pool)
                fence(run_id, "A", attempt)
                if writes_only is not None:
                    await saver.aput_writes(writes_only, [("messages", ["y"])], "task-2")
                    return None
                checkpoint = {**empty_checkpoint(), "id": checkpoint_id,
                              "channel_values": {"messages": ["hi"], "n": {"k": version}}}
                saved = await saver.aput(config, checkpoint, {"source": "loop", "step": 0},
                                         {"messages": version, "n": version})
                await saver.aput_writes(saved, [("messages", ["x"]), ("n", 2)], "task-1")
                return saved
            finally:
                await lg_pool.close()

        async def counts():
            return await pool.fetchrow(
                """SELECT (SELECT count(*) FROM checkpoints WHERE thread_id = 't') AS c,
                          (SELECT count(*) FROM checkpoint_blobs WHERE thread_id = 't') AS b,
                          (SELECT count(*) FROM checkpoint_writes WHERE thread_id = 't') AS w""")

        saved = await call(write, claimed.attempt, "1ef00000-0000-6000-8000-000000000001", "1")
        assert await counts() == {"c": 1, "b": 2, "w": 2}
        with pytest.raises(FencedOut):  # new blob versions and a checkpoint: none written
            await call(write, claimed.attempt + 1, "1ef00000-0000-6000-8000-000000000002", "2")
        with pytest.raises(FencedOut):  # pending writes alone
            await call(write, claimed.attempt + 1, "", "", saved)
        assert await counts() == {"c": 1, "b": 2, "w": 2}
        await pool.close()
