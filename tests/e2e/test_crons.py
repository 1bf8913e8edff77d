"""Crons end to end through ``langgraph_sdk`` 0.4.14: every crons method and every rule
of seed 001, then two instances sharing one database firing per-second crons."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections import Counter
from zoneinfo import ZoneInfo

import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import (
    NotFoundError,
    RateLimitError,
    UnprocessableEntityError,
)

from tests.e2e.conftest import base_env
from tests.e2e.runs_support import until

HI = {"messages": [{"role": "user", "content": "hi"}]}
CRON_KEYS = {"cron_id", "schedule", "enabled", "next_run_date", "end_time",
             "on_run_completed", "timezone", "payload", "user_id"}


async def _gone(client, tid):
    try:
        await client.threads.get(tid)
    except NotFoundError:
        return True
    return False


async def _errors(client, tid):
    """Every refusal names its field (422), or its resource (404)."""
    cases = [
        (dict(schedule="not a cron"), "schedule"),
        (dict(schedule="*/30 * * * * *"), "CRON_ALLOW_SECONDS_SCHEDULE"),
        (dict(schedule="0 * * * *", timezone="Mars/Olympus"), "timezone"),
        (dict(schedule="0 0 30 2 *"), "schedule"),
        (dict(schedule="0 * * * *", end_time=dt.datetime(2001, 1, 1, tzinfo=dt.UTC)),
         "end_time"),
    ]
    for kwargs, word in cases:
        with pytest.raises(UnprocessableEntityError, match=word):
            await client.crons.create("agent", input=HI, **kwargs)
    with pytest.raises(NotFoundError):
        await client.crons.create("no-such-graph", schedule="0 * * * *", input=HI)
    with pytest.raises(NotFoundError):
        await client.crons.create_for_thread(str(uuid.uuid4()), "agent", schedule="0 * * * *")
    with pytest.raises(NotFoundError):
        await client.crons.update(str(uuid.uuid4()), enabled=False)
    with pytest.raises(NotFoundError):
        await client.crons.delete(str(uuid.uuid4()))
    with pytest.raises(UnprocessableEntityError, match="sort_by"):
        await client.crons.search(sort_by="bogus")
    assert await client.crons.count(thread_id=tid) == 1  # nothing above was written


async def _first_runs(client):
    """Enabled create: the first run now, returned as a Run carrying the cron's fields."""
    run = await client.crons.create("agent", schedule="*/5 * * * *", input=HI,
                                    metadata={"team": "a"})
    assert CRON_KEYS <= set(run) and {"run_id", "status", "kwargs"} <= set(run)
    assert run["status"] == "pending" and run["enabled"] is True
    assert run["schedule"] == "*/5 * * * *" and run["end_time"] is None
    assert run["on_run_completed"] == "delete" and run["timezone"] is None
    assert run["metadata"] == {}  # the Run's own: cron metadata is not copied onto runs
    assert run["assistant_id"] != "agent"  # the graph id was resolved to its assistant
    next_run = dt.datetime.fromisoformat(run["next_run_date"])
    assert next_run > dt.datetime.now(dt.UTC) and next_run.minute % 5 == 0
    done = await client.runs.join(run["thread_id"], run["run_id"])
    assert done["messages"][-1]["content"] == "echo: hi"
    await until(lambda: _gone(client, run["thread_id"]))  # stateless: thread deleted

    kept = await client.crons.create("agent", schedule="0 0 * * *", input=HI,
                                     on_run_completed="keep", metadata={"team": "b"})
    await client.runs.join(kept["thread_id"], kept["run_id"])
    fetched = await client.runs.get(kept["thread_id"], kept["run_id"])
    assert fetched["status"] == "success" and fetched["metadata"] == {}
    thread = await client.threads.get(kept["thread_id"])  # kept
    assert thread["values"]["messages"][-1]["content"] == "echo: hi"

    tid = (await client.threads.create())["thread_id"]
    bound = await client.crons.create_for_thread(tid, "agent", schedule="0 * * * *",
                                                 input=HI)
    assert bound["thread_id"] == tid and bound["on_run_completed"] is None
    await client.runs.join(tid, bound["run_id"])
    state = await client.threads.get_state(tid)
    assert state["values"]["messages"][-1]["content"] == "echo: hi"
    return run, kept, bound, tid


async def _disabled_and_updates(client):
    """enabled=False: no run, the Cron itself; timezones; updates."""
    end = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    cron = await client.crons.create("agent", schedule="0 9 * * *", input=HI, enabled=False,
                                     timezone="America/New_York", end_time=end,
                                     metadata={"team": "c"})
    assert "run_id" not in cron and cron["enabled"] is False
    assert cron["timezone"] == "America/New_York" and cron["metadata"] == {"team": "c"}
    nine = dt.datetime.fromisoformat(cron["next_run_date"]).astimezone(
        ZoneInfo("America/New_York"))
    assert (nine.hour, nine.minute) == (9, 0)
    assert dt.datetime.fromisoformat(cron["end_time"]) == end
    utc = await client.crons.create("agent", schedule="30 7 * * *", input=HI, enabled=False)
    assert utc["timezone"] is None and utc["next_run_date"].endswith("T07:30:00+00:00")

    cid = cron["cron_id"]
    moved = await client.crons.update(cid, schedule="0 10 * * *")  # timezone kept
    assert moved["timezone"] == "America/New_York"
    ten = dt.datetime.fromisoformat(moved["next_run_date"]).astimezone(
        ZoneInfo("America/New_York"))
    assert (ten.hour, ten.minute) == (10, 0) and moved["schedule"] == "0 10 * * *"
    cleared = await client.crons.update(cid, end_time=None)
    assert cleared["end_time"] is None and cleared["schedule"] == "0 10 * * *"
    on = await client.crons.update(cid, enabled=True, metadata={"team": "d"}, input={"x": 1},
                                   timezone="Asia/Tokyo", on_run_completed="keep")
    assert on["enabled"] is True and on["metadata"] == {"team": "d"}
    assert on["payload"]["input"] == {"x": 1} and on["on_run_completed"] == "keep"
    tokyo = dt.datetime.fromisoformat(on["next_run_date"]).astimezone(ZoneInfo("Asia/Tokyo"))
    assert (tokyo.hour, tokyo.minute) == (10, 0)
    with pytest.raises(UnprocessableEntityError, match="schedule"):
        await client.crons.update(cid, schedule="bad")
    with pytest.raises(UnprocessableEntityError, match="timezone"):
        await client.crons.update(cid, timezone="Nowhere/Land")
    off = await client.crons.update(cid, enabled=False)
    assert off["enabled"] is False and off["next_run_date"] == on["next_run_date"]
    return cron, utc


async def _search_and_count(client, tid, total):
    everything = await client.crons.search(limit=100)
    assert len(everything) == total == await client.crons.count()
    created = [c["created_at"] for c in everything]
    assert created == sorted(created, reverse=True)  # newest first by default
    assert len(await client.crons.search(assistant_id="agent", limit=100)) == total
    assert await client.crons.count(assistant_id="agent") == total
    assert [c["thread_id"] for c in await client.crons.search(thread_id=tid)] == [tid]
    disabled = await client.crons.search(enabled=False)
    assert disabled and all(c["enabled"] is False for c in disabled)
    page = await client.crons.search(limit=2, offset=1)
    assert [c["cron_id"] for c in page] == [c["cron_id"] for c in everything[1:3]]
    by_next = await client.crons.search(sort_by="next_run_date", sort_order="asc", limit=100)
    dates = [c["next_run_date"] for c in by_next]
    assert dates == sorted(dates)
    picked = await client.crons.search(select=["cron_id", "schedule", "now"], limit=1)
    assert set(picked[0]) == {"cron_id", "schedule", "now"}


def test_cron_endpoints_follow_seed_001(start_server, database_url):
    server = start_server(base_env(database_url))

    async def scenario():
        client = get_client(url=server.url)
        run, kept, bound, tid = await _first_runs(client)
        await _errors(client, tid)
        cron, utc = await _disabled_and_updates(client)
        await _search_and_count(client, tid, total=5)

        await client.crons.delete(run["cron_id"])
        assert await client.crons.count() == 4
        await client.threads.delete(tid)  # a thread's crons go with it
        assert await client.crons.search(thread_id=tid) == []
        assistant = await client.assistants.create("agent", name="doomed")
        mine = await client.crons.create(assistant["assistant_id"], schedule="0 * * * *",
                                         enabled=False)
        assert mine["assistant_id"] == assistant["assistant_id"]
        await client.assistants.delete(assistant["assistant_id"])  # and an assistant's
        assert await client.crons.count(assistant_id=assistant["assistant_id"]) == 0
        assert await client.crons.count() == 3

        # CRON_MAX_PER_USER defaults to 100: the 101st is refused with 429
        for _ in range(97):
            await client.crons.create("agent", schedule="0 * * * *", enabled=False)
        with pytest.raises(RateLimitError, match="CRON_MAX_PER_USER"):
            await client.crons.create("agent", schedule="0 * * * *", enabled=False)
        await client.crons.delete(cron["cron_id"])
        await client.crons.create("agent", schedule="0 * * * *", enabled=False)  # room again

    asyncio.run(scenario())


def _occurrences(database_url, cron_id):
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            """SELECT execution_params -> 'cron' ->> 'scheduled_at', thread_id, status
               FROM runs WHERE cron_id = %s""", (cron_id,)).fetchall()


def test_two_instances_fire_each_occurrence_exactly_once(start_server, database_url):
    env = base_env(database_url, CRON_ALLOW_SECONDS_SCHEDULE="true", CRON_MAX_PER_USER="0",
                   AEGRA__CRON__TICK_INTERVAL_S="0.2")
    servers = [start_server(env, wait_ready=False), start_server(env, wait_ready=False)]
    for server in servers:
        server.wait_ready()
    # Three crons of each kind over 10 s contend for more occurrences than one of each
    # over 20 s did (>= 21 stateless, >= 9 thread-bound), in half the time.
    seconds, crons = 10, 3

    async def scenario():
        a, b = (get_client(url=s.url) for s in servers)
        tids = [(await b.threads.create())["thread_id"] for _ in range(crons)]
        every = [await a.crons.create("agent", schedule="* * * * * *", input=HI,
                                      on_run_completed="keep") for _ in range(crons)]
        bound = [await b.crons.create_for_thread(tid, "agent", schedule="*/2 * * * * *",
                                                 input=HI, multitask_strategy="enqueue")
                 for tid in tids]
        started = time.monotonic()
        # CRON_MAX_PER_USER=0 lifts the cap (more than the default 100), meanwhile
        for _ in range(6):
            await asyncio.gather(*(a.crons.create("agent", schedule="0 0 1 1 *", enabled=False)
                                   for _ in range(20)))
        assert await b.crons.count() == 120 + 2 * crons
        await asyncio.sleep(seconds - (time.monotonic() - started))
        for cron in every + bound:
            await b.crons.update(cron["cron_id"], enabled=False)
        return [c["cron_id"] for c in every], [c["cron_id"] for c in bound], tids

    every, bound, tids = asyncio.run(scenario())
    for cron_id in every:
        rows = _occurrences(database_url, cron_id)
        instants = [r[0] for r in rows if r[0] is not None]  # None: the run made at creation
        assert len(rows) == len(instants) + 1
        counts = Counter(instants)
        assert max(counts.values()) == 1, [i for i, n in counts.items() if n > 1]
        times = sorted(dt.datetime.fromisoformat(i) for i in instants)
        assert len(times) >= seconds - 3
        # every second in the span fired: no occurrence skipped between the two instances
        assert times == [times[0] + dt.timedelta(seconds=k) for k in range(len(times))]
        assert len({r[1] for r in rows}) == len(rows)  # stateless: a new thread per firing
    for cron_id, tid in zip(bound, tids, strict=True):
        bound_rows = _occurrences(database_url, cron_id)
        assert {r[1] for r in bound_rows} == {tid}  # thread-bound: always its thread
        bound_instants = [r[0] for r in bound_rows if r[0] is not None]
        assert len(bound_instants) == len(set(bound_instants)) >= seconds // 2 - 2

    def settled():
        return all(r[2] == "success" for cron_id in every
                   for r in _occurrences(database_url, cron_id))
    deadline = time.monotonic() + 30
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert settled()
