"""Ring 2: the three paths that write a run (the one-round-trip ``aegra_create_run``
function with a cached assistant, the full Python transaction, the cron ticker's
set-based insert of stateless firings) write the same row for the same run: they all
take their values from ``domain.run_rows.run_row``."""

from __future__ import annotations

import msgspec
import psycopg
import pytest

from aegra.adapters import aio
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.crons import PgCrons
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.runs import AssistantLookup, PgRuns
from aegra.domain import crons
from aegra.domain.errors import NotFound
from aegra.domain.run_rows import NewRun
from aegra.domain.runs import new_run_id
from aegra.services.runs import build_params

OWNER = {"identity": "alice", "permissions": ["read"], "display_name": "Alice",
         "is_authenticated": True, "team": "red"}
# Differ by construction between two runs: ids and the instants they were written at.
RUN_VOLATILE = {"run_id", "thread_id", "created_at", "updated_at", "available_at"}
THREAD_VOLATILE = {"thread_id", "created_at", "updated_at", "state_updated_at"}


@pytest.fixture
def migrated(database_url):
    migrate.ensure_migrated(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("""INSERT INTO assistant (assistant_id, graph_id, name, config, context)
                        VALUES ('a', 'g', 'g', '{"tags": ["from-assistant"]}',
                                '{"model": "m"}')""")
        for tid in ("t-full", "t-fast"):
            conn.execute("INSERT INTO thread (thread_id, metadata) VALUES (%s, %s)",
                         (tid, '{"owner": "alice"}'))
    return database_url


def _lookup(params):
    return AssistantLookup(assistant_id="a", graph_ids=["g"], missing=NotFound("a"),
                           build=lambda assistant: params)


async def _rows(pool, run_id):
    """The run's row and its thread's, without the columns that must differ."""
    run = await pool.fetchrow("SELECT *, available_at - created_at AS delay FROM runs "
                              "WHERE run_id = $1", run_id)
    thread = await pool.fetchrow("SELECT * FROM thread WHERE thread_id = $1",
                                 run["thread_id"])
    return ({k: v for k, v in run.items() if k not in RUN_VOLATILE},
            {k: v for k, v in thread.items() if k not in THREAD_VOLATILE})


async def _fire_one_stateless(pool):
    """A due stateless cron of alice's, fired by the ticker's transaction: the run it
    made, and the NewRun ``plan`` built for it."""
    cron = crons.NewCron(
        cron_id=new_run_id(), assistant_id="a", thread_id=None, user_id="alice",
        schedule="* * * * *", timezone=None, end_time=None, enabled=True,
        on_run_completed="keep", metadata={"team": "x"}, next_run_date=None,
        payload={"input": {"x": 1}, "config": {"configurable": {"k": "v"}},
                 "multitask_strategy": "enqueue", crons.OWNER_KEY: OWNER})
    await PgCrons(pool).create(cron, None, max_per_user=0)
    await pool.execute("UPDATE crons SET next_run_date = now() - interval '1 second' "
                       "WHERE cron_id = $1", cron.cron_id)
    planned: list[NewRun] = []

    def plan(row):
        firing = crons.plan(row, grace_s=10, build=build_params)
        assert firing.run is not None
        planned.append(firing.run)
        return firing

    fired = await PgCrons(pool).fire_due(plan, 10)
    assert len(fired.created) == 1 and not fired.skipped
    return fired.created[0].run["run_id"], planned[0]


async def test_stateless_run_rows_match_on_all_three_paths(migrated):
    async with aio.open_loop():
        pool = PgPool(migrated, min_size=1, max_size=3)
        await pool.open()
        batch_id, new = await _fire_one_stateless(pool)
        runs = PgRuns(pool)  # empty assistant cache: the full transaction
        full = await runs.create(new, _lookup(new.params))
        assert full.assistant is not None
        fast = await runs.create(new, _lookup(new.params))  # cached: the function
        assert fast.assistant is None
        batch_run, batch_thread = await _rows(pool, batch_id)
        for created in (full, fast):
            run, thread = await _rows(pool, created.run["run_id"])
            assert run == batch_run
            assert thread == batch_thread
        # what they agree on is the firing as its owner, not an empty row
        assert batch_run["user_id"] == "alice" and batch_run["stateless"] is True
        assert batch_run["status"] == "pending" and batch_run["metadata"] == {}
        assert batch_run["cron_id"] == new.cron_id and batch_run["multitask_strategy"] == (
            "enqueue")
        configurable = batch_run["execution_params"]["config"]["configurable"]
        assert configurable["langgraph_auth_user_id"] == "alice"
        assert configurable["langgraph_auth_user"] == OWNER and configurable["k"] == "v"
        assert batch_thread["status"] == "busy" and batch_thread["user_id"] == "alice"
        assert batch_thread["metadata"] == {"graph_id": "g", "assistant_id": "a"}
        await pool.close()


async def test_thread_run_rows_match_on_the_function_and_the_transaction(migrated):
    async with aio.open_loop():
        pool = PgPool(migrated, min_size=1, max_size=3)
        await pool.open()
        params = build_params({"assistant_id": "a", "input": {"y": 2}},
                              {"assistant_id": "a", "graph_id": "g"}, True)
        new = NewRun(thread_id="t-full", assistant_id="a", graph_id="g", params={},
                     metadata={"m": 1}, multitask_strategy="reject", after_seconds=5,
                     user_id="alice")
        runs = PgRuns(pool)
        full = await runs.create(new, _lookup(params))
        assert full.assistant is not None
        fast = await runs.create(msgspec.structs.replace(new, thread_id="t-fast"),
                                 _lookup(params))
        assert fast.assistant is None
        full_run, full_thread = await _rows(pool, full.run["run_id"])
        fast_run, fast_thread = await _rows(pool, fast.run["run_id"])
        assert full_run == fast_run and full_thread == fast_thread
        assert full_run["delay"].total_seconds() == 5 and full_run["metadata"] == {"m": 1}
        assert full_run["stateless"] is False and full_run["execution_params"] == params
        assert full_thread["status"] == "busy"
        assert full_thread["metadata"] == {"owner": "alice", "graph_id": "g",
                                           "assistant_id": "a"}
        await pool.close()
