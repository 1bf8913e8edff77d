"""Ring 2: the cron ticker against a real PostgreSQL: exactly-once claims across racing
tickers, the missed-occurrence policy, end_time, owners, busy threads."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import psycopg
import pytest
import trio

from aegra.adapters import aio
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.crons import NewCron, PgCrons
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.runs import NewRun, PgRuns
from aegra.domain.runs import new_run_id
from aegra.supervisor.cron import TickerDeps, run_cron_ticker, tick_once


@pytest.fixture
def migrated(database_url):
    migrate.ensure_migrated(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("""INSERT INTO assistant (assistant_id, graph_id, name, config)
                        VALUES ('a', 'g', 'g', '{"tags": ["from-assistant"]}')""")
        conn.execute("INSERT INTO thread (thread_id) VALUES ('t-busy')")
    return database_url


class Queue:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def put(self, run_id, *, front=False, delay_s=0.0):
        self.ids.append(run_id)


async def _settle(cancelled):
    raise AssertionError("no multitask cancellation expected here")


def deps(pool, queue, **kw):
    return TickerDeps(crons=PgCrons(pool), queue=queue, settle=_settle,
                      intake_stopped=trio.Event(), **kw)


def cron(schedule, *, thread_id=None, user_id=None, enabled=True, end_time=None,
         metadata=None, payload=None, on_run_completed="keep"):
    return NewCron(cron_id=new_run_id(), assistant_id="a", thread_id=thread_id,
                   user_id=user_id, schedule=schedule, timezone=None, end_time=end_time,
                   enabled=enabled, on_run_completed=on_run_completed,
                   payload=payload or {"input": {"x": 1}}, metadata=metadata or {},
                   next_run_date=None)


async def _add(pool, new, next_run_sql):
    """Insert a cron and put its next_run_date at a database-relative time."""
    await PgCrons(pool).create(new, None, max_per_user=0)
    await pool.execute(f"UPDATE crons SET next_run_date = {next_run_sql} WHERE cron_id = $1",
                       new.cron_id)


async def test_two_tickers_racing_create_one_run_per_occurrence(migrated):
    async with aio.open_loop():
        pools = [PgPool(migrated, min_size=1, max_size=3) for _ in range(2)]
        for pool in pools:
            await pool.open()
        ids = []
        for _ in range(12):
            new = cron("* * * * * *")
            await _add(pools[0], new, "date_trunc('second', now())")
            ids.append(new.cron_id)
        queues = [Queue(), Queue()]
        async with trio.open_nursery() as nursery:
            for pool, queue in zip(pools, queues, strict=True):
                # batch=1: the tickers contend row by row instead of one taking the lot
                await nursery.start(run_cron_ticker, deps(pool, queue, interval_s=0.05, batch=1))
            await trio.sleep(3.5)
            nursery.cancel_scope.cancel()
        rows = await pools[0].fetch(
            """SELECT cron_id, execution_params -> 'cron' ->> 'scheduled_at' AS at, run_id
               FROM runs WHERE cron_id IS NOT NULL""")
        per_occurrence = Counter((r["cron_id"], r["at"]) for r in rows)
        assert per_occurrence and max(per_occurrence.values()) == 1
        for cron_id in ids:
            instants = sorted(dt.datetime.fromisoformat(r["at"]) for r in rows
                              if r["cron_id"] == cron_id)
            assert len(instants) >= 3
            # no occurrence skipped either: one run for every second in the span
            assert instants == [instants[0] + dt.timedelta(seconds=k)
                                for k in range(len(instants))]
        # each run was queued once, by the instance whose transaction made it
        assert sorted(queues[0].ids + queues[1].ids) == sorted(r["run_id"] for r in rows)
        assert queues[0].ids and queues[1].ids  # both instances did share the work
        for pool in pools:
            await pool.close()


async def _clear_of_a_minute_boundary(pool, margin_s=10.0):
    """The minute crons below would fall due again if the test straddled a minute
    boundary: start it at least ``margin_s`` before the next one."""
    left = await pool.fetchval("SELECT 60 - extract(epoch FROM now())::numeric % 60")
    if float(left) < margin_s:
        await trio.sleep(float(left) + 0.05)


async def test_missed_occurrences_fire_once_then_resume(migrated):
    async with aio.open_loop():
        pool = PgPool(migrated)
        await pool.open()
        await _clear_of_a_minute_boundary(pool)
        queue = Queue()
        missed = cron("* * * * *", user_id="alice", metadata={"team": "x"})
        await _add(pool, missed, "now() - interval '3 hours'")
        ended = cron("* * * * *", end_time=dt.datetime(2001, 1, 1, tzinfo=dt.UTC))
        await _add(pool, ended, "now() - interval '1 minute'")
        off = cron("* * * * *", enabled=False)
        await _add(pool, off, "now() - interval '1 minute'")
        busy = cron("* * * * *", thread_id="t-busy",
                    payload={"input": {}, "multitask_strategy": "reject"})
        await _add(pool, busy, "now() - interval '1 minute'")
        await PgRuns(pool).create(NewRun(thread_id="t-busy", assistant_id="a", graph_id="g",
                                         params={}))
        late: list[float] = []  # the aegra_cron_lateness_seconds observations
        fired = await tick_once(deps(pool, queue, on_late=late.append))
        assert fired.claimed == 3 and len(fired.created) == 1
        assert len(late) == 1 and 3 * 3600 - 60 < late[0] < 3 * 3600 + 60  # busy: none
        assert {cron_id for cron_id, _ in fired.skipped} == {ended.cron_id, busy.cron_id}
        run = await pool.fetchrow(
            "SELECT run_id, user_id, metadata, execution_params, stateless FROM runs "
            "WHERE cron_id = $1", missed.cron_id)
        assert queue.ids == [run["run_id"]]
        # fired as the cron's owner; the cron's metadata stays on the cron
        assert run["user_id"] == "alice" and run["metadata"] == {}
        params = run["execution_params"]
        assert params["input"] == {"x": 1} and params["on_completion"] == "keep"
        assert params["config"]["tags"] == ["from-assistant"] and run["stateless"]
        rows = {r["cron_id"]: r for r in await pool.fetch(
            "SELECT cron_id, next_run_date, last_run_date, now() AS now FROM crons")}
        now = rows[missed.cron_id]["now"]
        # one firing for three hours of missed minutes, then the schedule resumes from now
        assert now < rows[missed.cron_id]["next_run_date"] <= now + dt.timedelta(minutes=1)
        assert rows[missed.cron_id]["last_run_date"] < now - dt.timedelta(hours=2)
        assert rows[ended.cron_id]["next_run_date"] is None  # past end_time: schedule over
        assert rows[off.cron_id]["next_run_date"] < now  # disabled: untouched
        assert rows[busy.cron_id]["next_run_date"] > now  # skipped, but moved on
        again = await tick_once(deps(pool, queue))
        assert again.claimed == 0 and 0 < again.next_due_s <= 60
        await pool.close()


async def test_late_occurrences_within_grace_each_fire(migrated):
    async with aio.open_loop():
        pool = PgPool(migrated)
        await pool.open()
        late = cron("* * * * * *")
        await _add(pool, late, "date_trunc('second', now()) - interval '4 seconds'")
        fired = await tick_once(deps(pool, Queue(), grace_s=10))
        assert len(fired.created) == 1 and fired.behind  # the next one is due already
        d = deps(pool, Queue(), grace_s=10)
        while (await tick_once(d)).behind:
            pass
        count = await pool.fetchval("SELECT count(*) FROM runs WHERE cron_id = $1",
                                    late.cron_id)
        assert count >= 5  # 4 s late: every one of those seconds fired, once
        await pool.close()
