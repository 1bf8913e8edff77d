"""Ring 2: the PostgreSQL run/lease adapters and the fenced checkpointer, for real."""

from __future__ import annotations

import msgspec
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
from aegra.domain.errors import Conflict, NotFound
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


async def _claimed(dsn):
    """A pool, and a run of thread "t" created and claimed by owner "A"."""
    pool = await _pool(dsn)
    runs = PgRuns(pool)
    run_id = (await runs.create(new("t"))).run["run_id"]
    return pool, run_id, await runs.claim(run_id, "A", 30)


async def _lg_pool(dsn):
    """Asyncio side: an open psycopg pool as LangGraph's saver wants it."""
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    lg_pool = AsyncConnectionPool(dsn, open=False, kwargs={
        "autocommit": True, "prepare_threshold": None, "row_factory": dict_row})
    await lg_pool.open()
    return lg_pool


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
    from aegra.adapters.aio import call

    async with aio.open_loop():
        pool, run_id, claimed = await _claimed(migrated)

        async def write(owner, attempt, checkpoint_id):
            from langgraph.checkpoint.base import empty_checkpoint

            lg_pool = await _lg_pool(migrated)
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

    from aegra.adapters.aio import call

    async with aio.open_loop():
        pool, run_id, claimed = await _claimed(migrated)
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}

        async def write(attempt, checkpoint_id, version, writes_only=None):
            lg_pool = await _lg_pool(migrated)
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


async def test_pending_writes_are_the_official_savers_rows(migrated):
    """FencedSaver serializes pending writes itself (on the loop, not in a thread): the
    rows must be exactly those LangGraph's own saver writes, for plain channels (INSERT,
    first write wins) and special ones (UPSERT, last write wins), and read back alike."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    from aegra.adapters.aio import call

    checkpoint_id = "1ef00000-0000-6000-8000-000000000001"
    calls = [
        ([("messages", ["x", {"k": 1}]), ("n", 2), ("__interrupt__", {"value": "a"})],
         "task-1", ""),
        ([("messages", ["second"])], "task-1", ""),  # INSERT: the first write stays
        ([("__interrupt__", {"value": "b"})], "task-1", ""),  # all special: UPSERT replaces
        ([("__error__", "boom"), ("n", 3)], "task-2", "~path"),
    ]

    async with aio.open_loop():
        pool, run_id, claimed = await _claimed(migrated)

        async def write(saver_class, thread_id):
            lg_pool = await _lg_pool(migrated)
            try:
                saver = saver_class(lg_pool)
                fence(run_id, "A", claimed.attempt)
                config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
                checkpoint = {**empty_checkpoint(), "id": checkpoint_id}
                saved = await saver.aput(config, checkpoint, {"source": "loop", "step": 0}, {})
                for writes, task_id, task_path in calls:
                    await saver.aput_writes(saved, writes, task_id, task_path)
                found = await saver.aget_tuple(saved)
                return found.pending_writes
            finally:
                await lg_pool.close()

        ours = await call(write, FencedSaver, "t")
        official = await call(write, AsyncPostgresSaver, "u")
        assert ours == official
        assert ("task-1", "messages", ["x", {"k": 1}]) in ours
        assert ("task-1", "__interrupt__", {"value": "b"}) in ours

        rows = {thread: [tuple(r.values()) for r in await pool.fetch(
            """SELECT checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type,
                      blob FROM checkpoint_writes WHERE thread_id = $1
               ORDER BY task_id, idx""", thread)] for thread in ("t", "u")}
        assert rows["t"] == rows["u"]
        assert len(rows["t"]) == 5
        await pool.close()


class _CountingSaver(FencedSaver):
    """Counts calls queued and transactions sent (the real saver, observed)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.sends = 0

    async def _commit(self, fence_, statements):
        self.calls += 1
        await super()._commit(fence_, statements)

    async def _send(self, fence_, statements):
        self.sends += 1
        await super()._send(fence_, statements)


async def _saver_and_lock(dsn, run_id):
    """A saver on its own pool, and a connection holding the run row FOR UPDATE: the
    fence (FOR SHARE) of the first write then waits until ``lock.commit()``."""
    lg_pool = await _lg_pool(dsn)
    lock = await psycopg.AsyncConnection.connect(dsn)
    await lock.execute("SELECT 1 FROM runs WHERE run_id = %s FOR UPDATE", (run_id,))
    return _CountingSaver(lg_pool), lg_pool, lock


async def test_writes_arriving_during_a_transaction_share_the_next_one(migrated):
    """Group commit: ten concurrent writes of one run take two transactions (the first
    alone, the nine queued behind it together), and each call returns committed; with
    the claim lost, every call is refused and nothing lands."""
    import asyncio

    from aegra.adapters.aio import call

    async with aio.open_loop():
        pool, run_id, claimed = await _claimed(migrated)
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": "",
                                   "checkpoint_id": "1ef00000-0000-6000-8000-000000000001"}}

        async def concurrent_writes(attempt):
            saver, lg_pool, lock = await _saver_and_lock(migrated, run_id)
            try:
                fence(run_id, "A", attempt)
                def write(i):
                    return asyncio.ensure_future(saver.aput_writes(
                        config, [("messages", [i]), ("n", i)], f"task-{attempt}-{i}"))

                writes = [write(0)]
                if attempt == claimed.attempt:
                    while saver.sends < 1:  # in flight, waiting for the row lock
                        await asyncio.sleep(0.01)
                writes += [write(i) for i in range(1, 10)]
                while saver.calls < 10:
                    await asyncio.sleep(0.01)
                await lock.commit()
                results = await asyncio.gather(*writes, return_exceptions=True)
                return saver.sends, results
            finally:
                await lock.close()
                await lg_pool.close()

        sends, results = await call(concurrent_writes, claimed.attempt)
        assert sends == 2
        assert results == [None] * 10
        assert await pool.fetchval("SELECT count(*) FROM checkpoint_writes") == 20
        # A lost claim: the fence matches no row, so nothing waits on the lock and the
        # calls fail in however many groups they happen to form; none lands.
        sends, results = await call(concurrent_writes, claimed.attempt + 1)
        assert all(isinstance(r, FencedOut) for r in results), results
        assert await pool.fetchval("SELECT count(*) FROM checkpoint_writes") == 20
        await pool.close()


async def test_a_cancelled_writer_leaves_its_write_whole(migrated):
    """A caller cancelled while its write is queued: the write is still sent whole with
    its group (never half of it), and the group's other callers are unaffected."""
    import asyncio

    from langgraph.checkpoint.base import empty_checkpoint

    from aegra.adapters.aio import call

    async with aio.open_loop():
        pool, run_id, claimed = await _claimed(migrated)
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}

        async def scenario():
            saver, lg_pool, lock = await _saver_and_lock(migrated, run_id)
            try:
                fence(run_id, "A", claimed.attempt)
                first = asyncio.ensure_future(saver.aput_writes(
                    {"configurable": {**config["configurable"], "checkpoint_id": "c0"}},
                    [("messages", ["x"])], "task-0"))
                while saver.sends < 1:  # in flight, waiting for the row lock
                    await asyncio.sleep(0.01)
                checkpoint = {**empty_checkpoint(), "id": "1ef00000-0000-6000-8000-000000000009",
                              "channel_values": {"messages": ["hi"], "n": {"k": 1}}}
                victim = asyncio.ensure_future(saver.aput(
                    config, checkpoint, {"source": "loop", "step": 0},
                    {"messages": "1", "n": "1"}))
                while saver.calls < 2:
                    await asyncio.sleep(0.01)
                victim.cancel()
                await lock.commit()
                await first
                with pytest.raises(asyncio.CancelledError):
                    await victim
                while saver._groups:  # the group still sends the cancelled caller's write
                    await asyncio.sleep(0.01)
                return saver.sends
            finally:
                await lock.close()
                await lg_pool.close()

        assert await call(scenario) == 2
        row = await pool.fetchrow(
            """SELECT (SELECT count(*) FROM checkpoints) AS c,
                      (SELECT count(*) FROM checkpoint_blobs) AS b,
                      (SELECT count(*) FROM checkpoint_writes) AS w""")
        assert row == {"c": 1, "b": 2, "w": 1}
        await pool.close()


async def test_a_write_interrupted_midway_commits_nothing(migrated):
    """The pipelined transaction: an exception (a cancellation, say) after part of the
    statements were queued rolls them all back, and a lost fence aborts the rest; the
    connection goes back to the pool idle either way."""
    import asyncio

    from psycopg.pq import TransactionStatus

    from aegra.adapters.aio import call
    from aegra.adapters.langgraph.fenced import _fenced_transaction

    async with aio.open_loop():
        pool, run_id, claimed = await _claimed(migrated)
        insert = ("INSERT INTO checkpoint_migrations (v) VALUES (%s)",
                  [(1000 + i,) for i in range(500)])

        async def scenario():
            conn = await psycopg.AsyncConnection.connect(migrated, autocommit=True)
            try:
                with pytest.raises(asyncio.CancelledError):
                    async with _fenced_transaction(conn, (run_id, "A", claimed.attempt)) as cur:
                        await cur.executemany(*insert)
                        raise asyncio.CancelledError
                idle_after_cancel = conn.info.transaction_status
                with pytest.raises(FencedOut):
                    async with _fenced_transaction(conn, (run_id, "B", claimed.attempt)) as cur:
                        await cur.executemany(*insert)
                idle_after_fence = conn.info.transaction_status
                async with _fenced_transaction(conn, (run_id, "A", claimed.attempt)) as cur:
                    await cur.execute(*insert[0:1], (2000,))
                return idle_after_cancel, idle_after_fence
            finally:
                await conn.close()

        assert await call(scenario) == (TransactionStatus.IDLE, TransactionStatus.IDLE)
        assert await pool.fetchval(
            "SELECT array_agg(v) FROM checkpoint_migrations WHERE v >= 1000") == [2000]
        await pool.close()


async def test_write_behind_returns_at_once_and_settle_waits_for_the_commit(migrated,
                                                                            monkeypatch):
    """Write-behind (durability="async"): writes return at once and share a transaction;
    settle() returns only once it is committed (not while it waits for the row lock),
    and with the claim lost settle() raises FencedOut and nothing lands."""
    import asyncio

    from aegra.adapters.aio import call
    from aegra.adapters.langgraph import fenced

    # A linger longer than the test: only settle() starts the send, whatever the load.
    monkeypatch.setattr(fenced, "LINGER_S", 60.0)
    async with aio.open_loop():
        pool, run_id, claimed = await _claimed(migrated)
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": "",
                                   "checkpoint_id": "1ef00000-0000-6000-8000-000000000001"}}

        async def scenario(attempt):
            saver, lg_pool, lock = await _saver_and_lock(migrated, run_id)
            try:
                key = fence(run_id, "A", attempt, write_behind=True)
                pending = None
                try:
                    # All return although the first send waits for the lock; with the
                    # claim lost, a call after the first refused send fails at once.
                    for i in range(3):
                        await saver.aput_writes(config, [("n", i)], f"task-{attempt}-{i}")
                    settling = asyncio.ensure_future(saver.settle(key))
                    await asyncio.sleep(0.2)
                    pending = not settling.done()
                    await lock.commit()
                    await settling
                    outcome = "settled"
                except FencedOut:
                    outcome = "fenced"
                saver.release(key)
                return pending, outcome, saver.sends, dict(saver._groups)
            finally:
                await lock.close()
                await lg_pool.close()

        # One transaction: the three writes were queued within the linger.
        assert await call(scenario, claimed.attempt) == (True, "settled", 1, {})
        assert await pool.fetchval("SELECT count(*) FROM checkpoint_writes") == 3
        pending, outcome, _, groups = await call(scenario, claimed.attempt + 1)
        assert (outcome, groups) == ("fenced", {})
        assert await pool.fetchval("SELECT count(*) FROM checkpoint_writes") == 3
        await pool.close()


async def test_write_behind_is_sent_after_the_linger_without_settle(migrated):
    """A long step between writes: what was queued is committed after LINGER_S, not
    held until the run settles (readers of the thread's state see it meanwhile)."""
    import asyncio

    from aegra.adapters.aio import call
    from aegra.adapters.langgraph import fenced

    async with aio.open_loop():
        pool, run_id, claimed = await _claimed(migrated)
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": "",
                                   "checkpoint_id": "1ef00000-0000-6000-8000-000000000001"}}

        async def scenario():
            lg_pool = await _lg_pool(migrated)
            try:
                saver = _CountingSaver(lg_pool)
                key = fence(run_id, "A", claimed.attempt, write_behind=True)
                await saver.aput_writes(config, [("n", 1)], "task-1")
                async with lg_pool.connection() as conn:
                    deadline = asyncio.get_running_loop().time() + 10
                    while saver._groups and asyncio.get_running_loop().time() < deadline:
                        await asyncio.sleep(fenced.LINGER_S)
                    after = await (await conn.execute(
                        "SELECT count(*) AS n FROM checkpoint_writes")).fetchone()
                await saver.settle(key)
                saver.release(key)
                return after["n"], saver.sends
            finally:
                await lg_pool.close()

        assert await call(scenario) == (1, 1)
        await pool.close()


async def test_create_takes_the_one_trip_path_until_the_assistant_changes(migrated):
    """The cached assistant row lets creation run as one function call; an assistant
    updated since (new version) makes the function refuse, and the full path builds
    the run from the current row. A missing thread still answers 404 either way."""
    from aegra.adapters.postgres.runs import AssistantLookup

    async with aio.open_loop():
        pool = await _pool(migrated)
        runs = PgRuns(pool)
        lookup = AssistantLookup(assistant_id="a", graph_ids=["g"], missing=NotFound("a"),
                                 build=lambda row: {"config": row["config"]})
        first = await runs.create(new(None, stateless=True), lookup)
        second = await runs.create(new(None, stateless=True), lookup)
        assert first.assistant is not None and second.assistant is None  # cached: fast
        assert second.run["execution_params"] == {"config": {}}
        await pool.execute("""UPDATE assistant SET config = '{"k": 1}', version = 2,
                              updated_at = now() WHERE assistant_id = 'a'""")
        third = await runs.create(new(None, stateless=True), lookup)
        assert third.assistant is not None  # refused by the function: the full path
        assert third.run["execution_params"] == {"config": {"k": 1}}
        fourth = await runs.create(new(None, stateless=True), lookup)
        assert fourth.assistant is None and fourth.run["execution_params"] == {
            "config": {"k": 1}}
        with pytest.raises(NotFound):
            await runs.create(msgspec.structs.replace(new("no-such-thread"),
                                                      if_not_exists="reject"), lookup)
        rows = await pool.fetchval("SELECT count(*) FROM runs")
        assert rows == 4
        await pool.close()
