"""The RunStore contract (plus the worker's claim, finish and release), run on the
in-memory run store and on PostgreSQL alike; the claim rules also on the actor tests'
lease twin (``MemoryRunStore``).

A case that passes on one and fails on the other means the fake has drifted: fix the
fake (or the adapter), never the case.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest

from aegra.adapters.memory.runs import MemoryRunStore
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.runs import PgRuns
from aegra.domain.errors import Conflict, NotFound
from aegra.domain.ports import Outcome
from aegra.domain.run_rows import NewRun
from tests.contract.support import pg_pool
from tests.contract.worlds import (  # noqa: F401  (world_fixture: the fixture "world")
    ALICE,
    BOB,
    SYSTEM_ASSISTANT,
    USER_ASSISTANT,
    World,
    lookup,
    tid,
    world_fixture,
)

FIELDS = {"run_id", "thread_id", "assistant_id", "status", "multitask_strategy", "metadata",
          "execution_params", "output", "error", "user_id", "stateless", "created_at",
          "updated_at", "attempt", "cron_id"}


def new(thread_id: str | None, strategy: str = "enqueue", **kw: Any) -> NewRun:
    return NewRun(thread_id=thread_id, assistant_id=USER_ASSISTANT, graph_id="agent",
                  params={"input": {"x": 1}}, multitask_strategy=strategy, **kw)


async def make(w: World, thread_id: str | None, strategy: str = "enqueue", **kw: Any
               ) -> str:
    return str((await w.runs.create(new(thread_id, strategy, **kw))).run["run_id"])


async def status(w: World, run_id: str) -> str:
    return str((await w.runs.get(run_id))["status"])


async def test_create_applies_multitask_rules_and_makes_missing_threads(world: Any) -> None:
    async with world() as w:
        t = await w.thread({**ALICE, "assistant_id": "kept"})
        assert await w.status(t) == "idle"
        created = await w.runs.create(new(t, "reject", metadata={"m": 1}, user_id="alice"))
        run = created.run
        assert set(run) == FIELDS and created.cancelled.running == []
        assert (run["thread_id"], run["status"], run["attempt"]) == (t, "pending", 0)
        assert (run["metadata"], run["user_id"], run["stateless"]) == ({"m": 1}, "alice", False)
        assert run["execution_params"] == {"input": {"x": 1}}
        assert run["created_at"] == run["updated_at"] and run["cron_id"] is None
        assert await w.runs.get(run["run_id"]) == run
        assert await w.status(t) == "busy" and (await w.threads.row(t))["active_run"]
        # The run tags its thread with graph and assistant; the thread's own keys stay.
        assert (await w.threads.get(t))["metadata"] == {
            **ALICE, "graph_id": "agent", "assistant_id": "kept"}
        with pytest.raises(Conflict, match="already running"):
            await w.runs.create(new(t, "reject"))
        queued = await make(w, t, "enqueue")
        # interrupt: what is pending settles now, the new run waits its turn.
        third = await w.runs.create(new(t, "interrupt"))
        assert third.cancelled.action == "interrupt" and third.cancelled.running == []
        assert sorted(third.cancelled.settled) == sorted([run["run_id"], queued])
        assert await status(w, queued) == "interrupted"
        assert await w.status(t) == "busy"
        # rollback: a displaced pending run is gone altogether.
        fourth = await w.runs.create(new(t, "rollback"))
        assert fourth.cancelled.settled == [third.run["run_id"]]
        assert await w.runs.find(third.run["run_id"]) is None

        with pytest.raises(NotFound):  # a missing thread, not to be created
            await w.runs.create(new(tid(), if_not_exists="reject"))
        made = tid()
        await make(w, made, if_not_exists="create")
        assert (await w.threads.get(made))["metadata"] == {
            "graph_id": "agent", "assistant_id": USER_ASSISTANT}
        assert await w.status(made) == "busy"
        stateless = await w.runs.create(new(None, stateless=True))
        assert stateless.run["stateless"] is True
        assert await w.status(stateless.run["thread_id"]) == "busy"


async def test_the_assistant_is_resolved_inside_the_create(world: Any) -> None:
    async with world() as w:
        t = await w.thread()
        for _ in range(2):  # PostgreSQL: the full path, then the cached one-trip path
            created = await w.runs.create(new(t), lookup())
            assert created.run["execution_params"] == {
                "config": {"tags": ["from-assistant"]}, "graph": "agent"}
            assert created.run["assistant_id"] == USER_ASSISTANT
        with pytest.raises(NotFound, match="nope"):
            await w.runs.create(new(t), lookup("nope"))
        found = await w.runs.assistant(lookup())
        assert (found["assistant_id"], found["graph_id"], found["metadata"]) == (
            USER_ASSISTANT, "agent", ALICE)
        with pytest.raises(NotFound):
            await w.runs.assistant(lookup("nope"))


async def test_create_as_checks_the_callers_filters(world: Any) -> None:
    async with world() as w:
        t = await w.thread(ALICE)
        with pytest.raises(NotFound):  # bob's filter hides alice's thread
            await w.runs.create_as(new(t), lookup(), thread_filter=BOB)
        assert await w.runs.list(t, limit=10, offset=0, status=None) == []
        assert await w.status(t) == "idle"
        with pytest.raises(NotFound):  # ... and alice's user assistant
            await w.runs.create_as(new(t), lookup(), assistant_filter=BOB)
        # A system assistant serves every caller, whatever the filter.
        ok = await w.runs.create_as(new(t), lookup(SYSTEM_ASSISTANT), thread_filter=ALICE,
                                    assistant_filter=BOB, thread_metadata={"owner": "bob"})
        assert ok.run["assistant_id"] == SYSTEM_ASSISTANT
        # thread_metadata goes only on a thread made for the run.
        assert (await w.threads.get(t))["metadata"]["owner"] == "alice"
        fresh = await w.runs.create_as(new(None, stateless=True), lookup(),
                                       assistant_filter=ALICE,
                                       thread_metadata={"owner": "alice", "k": 1})
        meta = (await w.threads.get(fresh.run["thread_id"]))["metadata"]
        assert meta == {"graph_id": "agent", "assistant_id": USER_ASSISTANT,
                        "owner": "alice", "k": 1}


async def test_claim_is_fifo_one_per_thread_and_finish_is_fenced(world: Any) -> None:
    async with world() as w:
        t = await w.thread()
        r1, r2, r3 = [await make(w, t) for _ in range(3)]
        other = await make(w, await w.thread())
        assert await w.runs.claim(r2, "A", 30) is None  # not the thread's oldest
        c1 = await w.runs.claim(r1, "A", 30)
        assert c1 is not None and (c1.run_id, c1.thread_id, c1.attempt) == (r1, t, 1)
        assert c1.params == {"input": {"x": 1}} and c1.stateless is False
        assert await w.runs.claim(r1, "B", 30) is None  # taken
        assert await w.runs.claim(r2, "B", 30) is None  # the thread is busy
        assert await w.runs.claim(other, "B", 30) is not None  # other threads are not
        assert await status(w, r1) == "running"
        assert (await w.runs.get(r1))["attempt"] == 1
        # Fenced: another owner, or an old attempt, writes nothing.
        done = Outcome(status="success", values={"v": 1})
        assert await w.runs.finish(c1, "B", done, {"v": 1}, {}) == (False, None)
        stale = msgspec.structs.replace(c1, attempt=0)
        assert await w.runs.finish(stale, "A", done, {"v": 1}, {}) == (False, None)
        assert await w.runs.finish(c1, "A", done, {"v": 1}, {}) == (True, r2)
        assert (await w.runs.get(r1))["output"] == {"v": 1}
        thread = await w.threads.get(t)
        assert (thread["status"], thread["values"]) == ("busy", {"v": 1})  # r2, r3 wait
        assert await w.runs.finish(c1, "A", done, None, {}) == (False, None)  # once only

        c2 = await w.runs.claim(r2, "A", 30)
        assert c2 is not None
        assert await w.runs.release(c2, "B") is False
        assert await w.runs.release(c2, "A") is True  # drain: back to pending
        assert await status(w, r2) == "pending"
        assert await w.runs.finish(c2, "A", done, None, {}) == (False, None)
        c2 = await w.runs.claim(r2, "B", 30)
        assert c2 is not None and c2.attempt == 2
        paused = Outcome(status="success", interrupted=True)
        assert await w.runs.finish(c2, "B", paused, None, {"task": []}) == (True, r3)
        c3 = await w.runs.claim(r3, "B", 30)
        assert c3 is not None
        failed = Outcome(status="error", error={"error": "E", "message": "boom"})
        assert await w.runs.finish(c3, "B", failed, None, {}) == (True, None)
        assert (await w.runs.get(r3))["error"] == {"error": "E", "message": "boom"}
        thread = await w.threads.get(t)
        assert (thread["status"], thread["error"]) == ("error", {"error": "E",
                                                                 "message": "boom"})
        assert not (await w.threads.row(t))["active_run"]


async def test_an_interrupted_finish_marks_the_thread(world: Any) -> None:
    async with world() as w:
        t = await w.thread()
        claimed = await w.runs.claim(await make(w, t), "A", 30)
        paused = Outcome(status="success", interrupted=True)
        assert await w.runs.finish(claimed, "A", paused, {"s": 1}, {"x": [1]}) == (True, None)
        thread = await w.threads.get(t)
        assert (thread["status"], thread["values"], thread["interrupts"]) == (
            "interrupted", {"s": 1}, {"x": [1]})


async def test_cancel_settles_pending_and_asks_running(world: Any) -> None:
    async with world() as w:
        t = await w.thread()
        running, pending = await make(w, t), await make(w, t)
        claimed = await w.runs.claim(running, "A", 30)
        lone = await w.thread()
        waiting = await make(w, lone)
        cancelled = await w.runs.request_cancel([running, pending, waiting, "nope"],
                                                "interrupt")
        assert cancelled.running == [running] and cancelled.action == "interrupt"
        assert sorted(cancelled.settled) == sorted([pending, waiting])
        assert await status(w, pending) == "interrupted"
        assert await status(w, running) == "running"  # its worker stops it
        assert await w.status(lone) == "idle"  # nothing left in flight there
        assert await w.status(t) == "busy"
        # Settled runs are not cancelled twice.
        again = await w.runs.request_cancel([pending], "rollback")
        assert (again.running, again.settled) == ([], [])
        # rollback: the run goes when its worker reports it.
        await w.runs.request_cancel([running], "rollback")
        rolled = Outcome(status="interrupted", cancel_action="rollback")
        assert await w.runs.finish(claimed, "A", rolled, None, {}) == (True, None)
        assert await w.runs.find(running) is None
        assert await w.status(t) == "idle"
        assert await w.runs.next_pending(t) is None


async def test_reads_hide_what_the_thread_filter_hides(world: Any) -> None:
    async with world() as w:
        mine, theirs = await w.thread(ALICE), await w.thread(BOB)
        a1, a2 = await make(w, mine), await make(w, mine)
        b1 = await make(w, theirs)
        assert (await w.runs.get(a1, mine, where=ALICE))["run_id"] == a1
        for call in (w.runs.get(a1, theirs), w.runs.get(a1, where=BOB), w.runs.get("nope")):
            with pytest.raises(NotFound):
                await call
        assert await w.runs.find(b1, where=ALICE) is None
        assert (await w.runs.find(b1))["thread_id"] == theirs

        def ids(rows: list[dict[str, Any]]) -> list[str]:
            return [r["run_id"] for r in rows]
        assert ids(await w.runs.list(mine, limit=10, offset=0, status=None)) == [a2, a1]
        assert ids(await w.runs.list(mine, limit=1, offset=1, status=None)) == [a1]
        assert ids(await w.runs.list(mine, limit=10, offset=0, status="running")) == []
        assert await w.runs.list(mine, limit=10, offset=0, status=None, where=BOB) == []
        assert await w.runs.list(tid(), limit=10, offset=0, status=None) == []

        assert sorted(await w.runs.inflight()) == sorted([a1, a2, b1])
        assert sorted(await w.runs.inflight(where=ALICE)) == sorted([a1, a2])
        assert await w.runs.inflight(thread_id=theirs) == [b1]
        assert await w.runs.inflight(run_ids=[a2, b1], where=ALICE) == [a2]
        assert await w.runs.inflight(status="running") == []

        assert await w.runs.thread_visible(mine) and await w.runs.thread_visible(mine,
                                                                                 where=ALICE)
        assert not await w.runs.thread_visible(mine, where=BOB)
        assert not await w.runs.thread_visible(tid())
        await w.runs.stream_start(mine, where=ALICE)
        for thread_id, flt in ((mine, BOB), (tid(), None)):
            with pytest.raises(NotFound):
                await w.runs.stream_start(thread_id, where=flt)
        assert await w.runs.next_pending(mine) == a1

        with pytest.raises(NotFound):  # hidden: nothing deleted
            await w.runs.delete(theirs, b1, where=ALICE)
        with pytest.raises(NotFound):  # wrong thread
            await w.runs.delete(mine, b1)
        await w.runs.delete(theirs, b1, where=BOB)
        assert await w.runs.find(b1) is None
        assert await w.status(theirs) == "idle"  # its only run went with it


async def test_next_runs_follows_in_flight_and_recent_runs(world: Any) -> None:
    async with world() as w:
        t = await w.thread()
        first = await make(w, t)
        since = await w.runs.stream_start(t)
        second = await make(w, t)
        claimed = await w.runs.claim(first, "A", 30)
        await w.runs.finish(claimed, "A", Outcome(status="success"), None, {})
        follow = await w.runs.next_runs(t, None, since)
        assert [r["run_id"] for r in follow] == [second]  # first ended before since
        assert follow[0]["status"] == "pending" and set(follow[0]) == {
            "run_id", "created_at", "status"}
        third = await make(w, t)
        after = await w.runs.next_runs(t, follow[0]["created_at"], since)
        assert [r["run_id"] for r in after] == [third]


async def test_runs_go_with_their_thread(world: Any) -> None:
    async with world() as w:
        t = await w.thread()
        run_id = await make(w, t)
        await w.threads.delete([t])
        assert await w.runs.find(run_id) is None
        assert await w.runs.inflight() == []
        assert await w.runs.list(t, limit=10, offset=0, status=None) == []
        await w.threads.create(t, {}, None, "raise")  # the same id again: a new thread
        assert await w.runs.list(t, limit=10, offset=0, status=None) == []
        assert await w.status(t) == "idle"


async def test_refresh_thread_leaves_a_busy_thread_alone(world: Any) -> None:
    async with world() as w:
        t = await w.thread()
        await w.runs.refresh_thread(t, {"v": 2}, {"n": [1]}, True)
        thread = await w.threads.get(t)
        assert (thread["status"], thread["values"], thread["interrupts"]) == (
            "interrupted", {"v": 2}, {"n": [1]})
        busy = await w.thread()
        await make(w, busy)
        await w.runs.refresh_thread(busy, {"v": 3}, {}, True)
        thread = await w.threads.get(busy)
        assert (thread["status"], thread["values"]) == ("busy", None)


# -- the actor tests' lease twin: the claim rules only ------------------------------------
class LeaseTwin:
    def __init__(self) -> None:
        self.runs = MemoryRunStore()

    async def pending(self, thread_id: str) -> str:
        run_id = tid()
        self.runs.add(run_id, thread_id)
        return run_id

    async def status(self, run_id: str) -> str:
        return self.runs.runs[run_id].status


class PgLeases:
    def __init__(self, pool: PgPool) -> None:
        self.pool = pool
        self.runs = PgRuns(pool)

    async def pending(self, thread_id: str) -> str:
        new = NewRun(thread_id=thread_id, assistant_id="a", graph_id="g", params={},
                     multitask_strategy="enqueue", if_not_exists="create")
        return str((await self.runs.create(new)).run["run_id"])

    async def status(self, run_id: str) -> str:
        return str((await self.runs.get(run_id))["status"])


@pytest.fixture(params=["lease-twin", "postgres"])
def leases(request: pytest.FixtureRequest) -> Any:
    dsn = None
    if request.param == "postgres":
        dsn = request.getfixturevalue("database_url")
        migrate.ensure_migrated(dsn)

    @asynccontextmanager
    async def open_leases() -> AsyncIterator[Any]:
        if dsn is None:
            yield LeaseTwin()
            return
        async with pg_pool(dsn) as pool:
            await pool.execute("INSERT INTO assistant (assistant_id, graph_id, name) "
                               "VALUES ('a', 'g', 'g')")
            yield PgLeases(pool)
    return open_leases


async def test_the_lease_twin_claims_and_fences_as_postgres_does(leases: Any) -> None:
    async with leases() as h:
        r1, r2 = await h.pending("t1"), await h.pending("t1")
        assert await h.runs.claim(r2, "A", 30) is None
        c1 = await h.runs.claim(r1, "A", 30)
        assert c1 is not None and c1.attempt == 1 and await h.status(r1) == "running"
        assert await h.runs.claim(r1, "B", 30) is None
        assert await h.runs.claim(r2, "B", 30) is None
        assert await h.runs.release(c1, "B") is False
        assert await h.runs.release(c1, "A") is True
        assert await h.status(r1) == "pending"
        c1 = await h.runs.claim(r1, "B", 30)
        assert c1 is not None and c1.attempt == 2
        done = Outcome(status="success")
        assert await h.runs.finish(c1, "A", done, None, {}) == (False, None)
        assert await h.runs.finish(c1, "B", done, None, {}) == (True, r2)
        assert await h.status(r1) == "success"
        c2 = await h.runs.claim(r2, "A", 30)
        assert await h.runs.finish(c2, "A", done, None, {}) == (True, None)
