"""Ring 2: the TTL sweeper against a real PostgreSQL: what a sweep deletes (the thread,
its checkpoints, blobs, writes, runs and crons; nothing else), keep_latest, the creation
trigger's default TTL and activity clock, SKIP LOCKED between sweepers and a sweep racing
a run on the thread. Checkpoints are written by a real LangGraph graph."""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, TypedDict

import psycopg
import pytest
import trio
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import END, START, StateGraph
from psycopg.rows import dict_row

from aegra.adapters import aio
from aegra.adapters.langgraph.schema import ensure_langgraph_tables
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.ttl import PgThreadSweeps
from aegra.domain.ttl import TtlDefault
from aegra.supervisor.sweeper import sweep_once

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "runs", "crons")


class State(TypedDict):
    log: Annotated[list[str], operator.add]


def _graph(conn):
    b = StateGraph(State)
    b.add_node("a", lambda s: {"log": ["a"]})
    b.add_node("b", lambda s: {"log": ["b"]})
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", END)
    return b.compile(checkpointer=PostgresSaver(conn))


@pytest.fixture
def db(database_url):
    migrate.ensure_migrated(database_url)
    ensure_langgraph_tables(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO assistant (assistant_id, graph_id, name) VALUES ('a','g','g')")
    return database_url


def seed(dsn, thread_id, *, expired, strategy="delete", status="idle", run=None,
         cron=False, turns=2):
    """A thread with ``turns`` graph invocations of checkpoints, optionally a run (its
    status) and a cron; ``expired`` puts its clock in the past."""
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0,
                         row_factory=dict_row) as conn:
        conn.execute("""INSERT INTO thread (thread_id, status, ttl) VALUES
                        (%s, %s, jsonb_build_object('strategy', %s::text, 'ttl_minutes', 60))""",
                     (thread_id, status, strategy))
        graph = _graph(conn)
        for _ in range(turns):
            graph.invoke({"log": ["in"]}, {"configurable": {"thread_id": thread_id}})
        if run is not None:
            conn.execute("""INSERT INTO runs (run_id, thread_id, assistant_id, status,
                            execution_params) VALUES (%s, %s, 'a', %s, '{}')""",
                         (str(uuid.uuid4()), thread_id, run))
        if cron:
            conn.execute("""INSERT INTO crons (cron_id, assistant_id, thread_id, schedule)
                            VALUES (%s, 'a', %s, '* * * * *')""", (str(uuid.uuid4()), thread_id))
        if expired:
            # neither updated_at nor ttl change: the trigger keeps this expires_at
            conn.execute("UPDATE thread SET expires_at = now() - interval '1 second' "
                         "WHERE thread_id = %s", (thread_id,))


def counts(dsn, thread_id):
    with psycopg.connect(dsn) as conn:
        out = {t: conn.execute(f"SELECT count(*) FROM {t} WHERE thread_id = %s",
                               (thread_id,)).fetchone()[0] for t in TABLES}
        out["thread"] = conn.execute("SELECT count(*) FROM thread WHERE thread_id = %s",
                                     (thread_id,)).fetchone()[0]
    return out


async def test_sweep_deletes_exactly_the_expired_threads_rows(db):
    seed(db, "gone", expired=True, run="success", cron=True)
    seed(db, "fresh", expired=False, run="success", cron=True)
    seed(db, "queued", expired=True, run="pending")
    seed(db, "busy", expired=True, status="busy", run="running")
    seed(db, "kept", expired=True, strategy="keep_latest", run="success", turns=3)
    before = {t: counts(db, t) for t in ("gone", "fresh", "queued", "busy", "kept")}
    assert all(before["gone"][t] > 0 for t in (*TABLES, "thread"))  # something to delete
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE bystander AS SELECT 1 AS x")
        conn.execute("INSERT INTO store (prefix, key, value) VALUES ('p', 'k', '{}')")
    async with aio.open_loop():
        pool = PgPool(db)
        await pool.open()
        try:
            totals = await sweep_once(PgThreadSweeps(pool), batch_size=100, pause_s=0)
        finally:
            await pool.close()
    assert (totals.deleted, totals.pruned, totals.runs, totals.crons) == (1, 1, 1, 1)
    assert counts(db, "gone") == dict.fromkeys((*TABLES, "thread"), 0)
    for tid in ("fresh", "queued", "busy"):
        assert counts(db, tid) == before[tid]  # not expired / a run pending or running
    kept = counts(db, "kept")
    assert kept["thread"] == 1 and kept["runs"] == 1
    assert kept["checkpoints"] == 1 < before["kept"]["checkpoints"]
    assert totals.checkpoints == (before["gone"]["checkpoints"]
                                  + before["kept"]["checkpoints"] - 1)
    with psycopg.connect(db, autocommit=True, prepare_threshold=0,
                         row_factory=dict_row) as conn:
        # the kept thread's latest state is whole: its blobs are still there
        state = _graph(conn).get_state({"configurable": {"thread_id": "kept"}})
        assert state.values["log"] == ["in", "a", "b"] * 3
        row = conn.execute("SELECT expires_at FROM thread WHERE thread_id = 'kept'").fetchone()
        assert row["expires_at"] is None  # pruned: the clock waits for the next activity
        assert conn.execute("SELECT count(*) AS n FROM store").fetchone()["n"] == 1
        assert conn.execute("SELECT count(*) AS n FROM bystander").fetchone()["n"] == 1


async def test_default_ttl_stamped_on_new_threads_and_activity_restarts_clock(db):
    async with aio.open_loop():
        pool = PgPool(db)
        await pool.open()
        sweeps = PgThreadSweeps(pool)
        try:
            await pool.execute("INSERT INTO thread (thread_id) VALUES ('before')")
            await sweeps.set_default(TtlDefault(strategy="delete", ttl_minutes=30))
            await pool.execute("INSERT INTO thread (thread_id) VALUES ('after')")
            await pool.execute("""INSERT INTO thread (thread_id, ttl) VALUES
                ('own', '{"strategy": "keep_latest", "ttl_minutes": 5}')""")
            await sweeps.set_default(None)
            await pool.execute("INSERT INTO thread (thread_id) VALUES ('removed')")
            rows = {r["thread_id"]: r for r in await pool.fetch(
                "SELECT thread_id, ttl, extract(epoch FROM expires_at - now()) AS left_s "
                "FROM thread")}
            await pool.execute("UPDATE thread SET expires_at = now() - interval '1 hour' "
                               "WHERE thread_id = 'own'")
            await pool.execute("UPDATE thread SET metadata = '{\"a\": 1}', updated_at = now() "
                               "WHERE thread_id = 'own'")
            patched = await pool.fetchval("SELECT expires_at < now() FROM thread "
                                          "WHERE thread_id = 'own'")
            await pool.execute("UPDATE thread SET status = 'busy' WHERE thread_id = 'own'")
            await pool.execute("UPDATE thread SET status = 'idle' WHERE thread_id = 'own'")
            refreshed = await pool.fetchval(
                "SELECT extract(epoch FROM expires_at - now()) FROM thread "
                "WHERE thread_id = 'own'")
        finally:
            await pool.close()
    assert rows["before"]["ttl"] is None and rows["before"]["left_s"] is None
    assert rows["removed"]["ttl"] is None
    assert rows["after"]["ttl"]["strategy"] == "delete"
    assert 29 * 60 < rows["after"]["left_s"] <= 30 * 60
    assert rows["own"]["ttl"]["strategy"] == "keep_latest"  # its own wins over a default
    assert "expires_at" in rows["own"]["ttl"]  # what ?include=ttl reports
    assert patched is True  # a metadata PATCH is not activity
    assert 4 * 60 < refreshed <= 5 * 60  # a run starting and ending restarted the clock


async def test_two_sweepers_share_a_backlog_without_double_work(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("""INSERT INTO thread (thread_id, ttl)
                        SELECT 't' || i, '{"ttl_minutes": 1}' FROM generate_series(1, 300) i""")
        conn.execute("UPDATE thread SET expires_at = now() - interval '1 second'")
    async with aio.open_loop():
        pools = [PgPool(db, min_size=1, max_size=2) for _ in range(2)]
        for pool in pools:
            await pool.open()
        results = []

        async def sweep(pool):
            results.append(await sweep_once(PgThreadSweeps(pool), batch_size=10, pause_s=0))
        try:
            async with trio.open_nursery() as nursery:
                for pool in pools:
                    nursery.start_soon(sweep, pool)
        finally:
            for pool in pools:
                await pool.close()
    assert sum(r.deleted for r in results) == 300  # each thread deleted exactly once
    assert all(r.batches > 1 for r in results)  # both took part


async def test_sweep_racing_a_run_never_deletes_the_thread_under_it(db):
    seed(db, "raced", expired=True, turns=1)
    run_id = str(uuid.uuid4())
    async with aio.open_loop():
        pool = PgPool(db)
        await pool.open()
        sweeps = PgThreadSweeps(pool)
        try:
            with psycopg.connect(db) as creator:
                # a run being created: the thread row locked as create_run locks it, the
                # pending run inserted, not yet committed
                creator.execute("SELECT 1 FROM thread WHERE thread_id = 'raced' "
                                "FOR NO KEY UPDATE")
                creator.execute("""INSERT INTO runs (run_id, thread_id, assistant_id,
                                   execution_params) VALUES (%s, 'raced', 'a', '{}')""",
                                (run_id,))
                with trio.fail_after(10):  # skipped, not waited on
                    during = await sweeps.sweep_batch(100)
                creator.commit()
            after_commit = await sweeps.sweep_batch(100)
            await pool.execute("UPDATE runs SET status = 'running' WHERE run_id = $1", run_id)
            while_running = await sweeps.sweep_batch(100)
            still = counts(db, "raced")
            await pool.execute("UPDATE runs SET status = 'success' WHERE run_id = $1", run_id)
            finished = await sweeps.sweep_batch(100)
        finally:
            await pool.close()
    assert (during.claimed, after_commit.claimed, while_running.claimed) == (0, 0, 0)
    assert still["thread"] == 1 and still["checkpoints"] > 0 and still["runs"] == 1
    assert (finished.deleted, finished.runs) == (1, 1)
    assert counts(db, "raced")["thread"] == 0
