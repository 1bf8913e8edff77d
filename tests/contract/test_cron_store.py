"""The CronStore contract, run on the in-memory cron store and on PostgreSQL alike.

A case that passes on one and fails on the other means the fake has drifted: fix the
fake (or the adapter), never the case.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from aegra.domain.crons import COLUMNS, Firing, NewCron
from aegra.domain.errors import Conflict, NotFound, TooMany
from aegra.domain.run_rows import NewRun
from aegra.domain.runs import new_run_id
from tests.contract.worlds import (  # noqa: F401  (world_fixture: the fixture "world")
    ALICE,
    BOB,
    SYSTEM_ASSISTANT,
    USER_ASSISTANT,
    World,
    world_fixture,
)

NOW = dt.datetime.now(dt.UTC)


def cron(*, thread_id: str | None = None, user_id: str | None = "alice",
         metadata: dict[str, Any] | None = None, enabled: bool = True,
         next_run_date: dt.datetime | None = None, assistant_id: str = USER_ASSISTANT
         ) -> NewCron:
    return NewCron(cron_id=new_run_id(), assistant_id=assistant_id, thread_id=thread_id,
                   user_id=user_id, schedule="0 * * * *", timezone=None, end_time=None,
                   enabled=enabled, on_run_completed=None if thread_id else "keep",
                   payload={"input": {"x": 1}},
                   metadata=dict(ALICE) if metadata is None else metadata,
                   next_run_date=next_run_date or NOW + dt.timedelta(hours=1))


def first_run(new: NewCron, strategy: str = "reject") -> NewRun:
    return NewRun(thread_id=new.thread_id, assistant_id=new.assistant_id, graph_id="agent",
                  params={"input": {"x": 1}}, multitask_strategy=strategy,
                  user_id=new.user_id, stateless=new.thread_id is None, cron_id=new.cron_id)


async def count(w: World, **kw: Any) -> int:
    args: dict[str, Any] = {"assistant_id": None, "thread_id": None, "enabled": None,
                            "metadata": None}
    args.update(kw)
    return int(await w.crons.count(**args))


async def search(w: World, **kw: Any) -> list[str]:
    args: dict[str, Any] = {"assistant_id": None, "thread_id": None, "enabled": None,
                            "metadata": None, "limit": 100, "offset": 0,
                            "sort_by": "created_at", "sort_order": "desc"}
    args.update(kw)
    return [c["cron_id"] for c in await w.crons.search(**args)]


async def test_the_assistant_a_cron_names(world: Any) -> None:
    async with world() as w:
        found = await w.crons.assistant(USER_ASSISTANT)
        assert found == {"assistant_id": USER_ASSISTANT, "graph_id": "agent",
                         "config": {"tags": ["from-assistant"]}, "context": {},
                         "metadata": ALICE}
        assert (await w.crons.assistant("agent"))["assistant_id"] == SYSTEM_ASSISTANT
        with pytest.raises(NotFound):
            await w.crons.assistant("nope")


async def test_create_with_its_first_run_and_read_back(world: Any) -> None:
    async with world() as w:
        new = cron()
        row, created = await w.crons.create(new, first_run(new), max_per_user=0)
        assert list(row) == list(COLUMNS)
        assert (row["cron_id"], row["user_id"], row["enabled"]) == (new.cron_id, "alice", True)
        assert (row["payload"], row["metadata"]) == ({"input": {"x": 1}}, ALICE)
        assert row["next_run_date"] == new.next_run_date and row["thread_id"] is None
        assert row["created_at"] == row["updated_at"]
        assert await w.crons.get(new.cron_id) == row
        assert await w.crons.get(new.cron_id, where=ALICE) == row
        assert created is not None and created.run["cron_id"] == new.cron_id
        run = await w.runs.get(created.run["run_id"])
        assert (run["status"], run["stateless"]) == ("pending", True)
        disabled = cron(enabled=False)
        _, none = await w.crons.create(disabled, None, max_per_user=0)
        assert none is None and (await w.crons.get(disabled.cron_id))["enabled"] is False
        for call in (w.crons.get(new.cron_id, where=BOB), w.crons.get("nope")):
            with pytest.raises(NotFound):
                await call


async def test_create_is_all_or_nothing(world: Any) -> None:
    async with world() as w:
        for _ in range(2):
            new = cron()
            await w.crons.create(new, first_run(new), max_per_user=2)
        refused = cron()
        with pytest.raises(TooMany):
            await w.crons.create(refused, first_run(refused), max_per_user=2)
        await w.crons.create(cron(user_id="bob"), None, max_per_user=2)  # counted per user
        with pytest.raises(NotFound):  # the assistant is hidden from the caller
            await w.crons.create(cron(), None, max_per_user=0, assistant_where=BOB)
        t = await w.thread(ALICE)
        with pytest.raises(NotFound):  # ... or the thread
            await w.crons.create(cron(thread_id=t), None, max_per_user=0, thread_where=BOB)
        with pytest.raises(NotFound):  # ... or it does not exist
            await w.crons.create(cron(thread_id="nope"), None, max_per_user=0)
        bound = cron(thread_id=t)
        await w.crons.create(bound, first_run(bound), max_per_user=0, thread_where=ALICE,
                             assistant_where=ALICE)
        busy = cron(thread_id=t)
        with pytest.raises(Conflict):  # the first run is refused: no cron either
            await w.crons.create(busy, first_run(busy, "reject"), max_per_user=0)
        with pytest.raises(NotFound):
            await w.crons.get(busy.cron_id)
        assert await count(w) == 4
        assert len(await w.runs.inflight()) == 3


async def test_update_and_delete_see_only_what_where_lets_through(world: Any) -> None:
    async with world() as w:
        new = cron()
        row, created = await w.crons.create(new, first_run(new), max_per_user=0)
        seen: list[dict[str, Any]] = []

        def patch(current: dict[str, Any]) -> dict[str, Any]:
            seen.append(current)
            return {"enabled": False, "metadata": {"owner": "alice", "v": 2},
                    "schedule": "5 * * * *", "next_run_date": None, "cron_id": "ignored"}
        with pytest.raises(NotFound):
            await w.crons.update(new.cron_id, patch, where=BOB)
        assert seen == []
        updated = await w.crons.update(new.cron_id, patch, where=ALICE)
        assert seen[0] == row  # the row as it was, for the pure patch
        assert (updated["cron_id"], updated["enabled"], updated["schedule"]) == (
            new.cron_id, False, "5 * * * *")
        assert updated["metadata"] == {"owner": "alice", "v": 2}
        assert updated["next_run_date"] is None
        assert updated["updated_at"] > row["updated_at"]
        assert updated["created_at"] == row["created_at"]
        assert await w.crons.get(new.cron_id) == updated
        with pytest.raises(NotFound):
            await w.crons.delete(new.cron_id, where=BOB)
        await w.crons.delete(new.cron_id, where=ALICE)
        with pytest.raises(NotFound):
            await w.crons.delete(new.cron_id)
        # Its run stays, no longer tied to it.
        assert created is not None
        assert (await w.runs.get(created.run["run_id"]))["cron_id"] is None


async def test_search_and_count(world: Any) -> None:
    async with world() as w:
        mine, theirs = await w.thread(ALICE), await w.thread(BOB)
        made = []
        for i, (thread_id, meta, enabled, when) in enumerate((
                (None, {"owner": "alice", "i": 0}, True, NOW + dt.timedelta(hours=3)),
                (mine, {"owner": "alice", "i": 1}, False, None),
                (theirs, {"owner": "alice", "i": 2}, True, NOW + dt.timedelta(hours=1)),
                (None, {"owner": "bob", "i": 3}, True, NOW + dt.timedelta(hours=2)))):
            new = cron(thread_id=thread_id, metadata=meta, enabled=enabled,
                       assistant_id=SYSTEM_ASSISTANT if i == 3 else USER_ASSISTANT)
            await w.crons.create(new, None, max_per_user=0)
            if when is None:
                await w.crons.update(new.cron_id, lambda r: {"next_run_date": None})
            else:
                await w.crons.update(new.cron_id, lambda r, when=when: {"next_run_date": when})
            made.append(new.cron_id)
        newest = list(reversed(made))
        assert await search(w) == newest
        assert await search(w, sort_order="asc") == made
        assert await search(w, limit=2, offset=1) == newest[1:3]
        # NULL sorts as the largest value: last ascending, first descending.
        assert await search(w, sort_by="next_run_date", sort_order="asc") == [
            made[2], made[3], made[0], made[1]]
        assert await search(w, sort_by="next_run_date") == [made[1], made[0], made[3],
                                                           made[2]]
        assert await search(w, assistant_id="agent") == [made[3]]  # graph id: its default
        assert await search(w, assistant_id=USER_ASSISTANT) == newest[1:]
        assert await search(w, thread_id=mine) == [made[1]]
        assert await search(w, enabled=False) == [made[1]]
        assert await search(w, metadata={"i": 2}) == [made[2]]
        assert await search(w, where=ALICE) == newest[1:]
        # thread_where hides crons bound to threads one may not see; stateless ones stay.
        assert await search(w, thread_where=ALICE) == [made[3], made[1], made[0]]
        assert await search(w, where=ALICE, thread_where=BOB) == [made[2], made[0]]
        with pytest.raises(ValueError):
            await search(w, sort_by="schedule; DROP TABLE crons")
        assert await count(w) == 4
        assert await count(w, enabled=True, where=ALICE) == 2
        assert await count(w, thread_where=ALICE) == 3
        assert await count(w, assistant_id="agent", metadata={"owner": "bob"}) == 1


async def test_crons_go_with_their_thread_and_assistant(world: Any) -> None:
    async with world() as w:
        t = await w.thread()
        bound, free = cron(thread_id=t), cron()
        for new in (bound, free):
            await w.crons.create(new, None, max_per_user=0)
        await w.threads.delete([t])
        with pytest.raises(NotFound):
            await w.crons.get(bound.cron_id)
        assert await search(w) == [free.cron_id]
        await w.assistants.delete(USER_ASSISTANT)
        assert await count(w) == 0


async def test_fire_due_claims_makes_runs_and_advances(world: Any) -> None:
    async with world() as w:
        busy = await w.thread()
        await w.runs.create(NewRun(thread_id=busy, assistant_id=USER_ASSISTANT,
                                   graph_id="agent", params={}))
        past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        crons = {name: cron(thread_id=thread, enabled=enabled, next_run_date=when)
                 for name, thread, enabled, when in (
                     ("oldest", None, True, past - dt.timedelta(minutes=1)),
                     ("stateless", None, True, past),
                     ("on-busy", busy, True, past),
                     ("finished", None, True, past),
                     ("disabled", None, False, past),
                     ("future", None, True, NOW + dt.timedelta(hours=1)))}
        for new in crons.values():
            await w.crons.create(new, None, max_per_user=0)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)
        planned: list[str] = []

        def plan(row: dict[str, Any]) -> Firing:
            planned.append(row["cron_id"])
            assert row["graph_id"] == "agent"
            assert row["assistant_config"] == {"tags": ["from-assistant"]}
            assert row["db_now"] >= row["next_run_date"]
            if row["cron_id"] == crons["finished"].cron_id:
                return Firing(run=None, next_run_date=None, occurrence=row["next_run_date"],
                              why="past end_time")
            run = NewRun(thread_id=row["thread_id"], assistant_id=row["assistant_id"],
                         graph_id=row["graph_id"], params={"fired": True},
                         stateless=row["thread_id"] is None, cron_id=row["cron_id"],
                         multitask_strategy="reject")
            return Firing(run=run, next_run_date=later, occurrence=row["next_run_date"])

        fired = await w.crons.fire_due(plan, 10)
        ids = {name: new.cron_id for name, new in crons.items()}
        assert planned[0] == ids["oldest"]  # oldest occurrence first
        assert sorted(planned) == sorted(ids[n] for n in ("oldest", "stateless", "on-busy",
                                                          "finished"))
        assert fired.claimed == 4 and fired.behind is False
        assert sorted(c.run["cron_id"] for c in fired.created) == sorted(
            [ids["oldest"], ids["stateless"]])
        assert all(c.run["execution_params"] == {"fired": True} for c in fired.created)
        skipped = dict(fired.skipped)
        assert skipped[ids["finished"]] == "past end_time"
        assert "already running" in skipped[ids["on-busy"]]  # the thread's rules apply
        assert fired.next_due_s is not None and 0 < fired.next_due_s <= 3600
        for name in ("oldest", "stateless", "on-busy"):
            assert (await w.crons.get(ids[name]))["next_run_date"] == later
        assert (await w.crons.get(ids["finished"]))["next_run_date"] is None
        assert (await w.crons.get(ids["disabled"]))["next_run_date"] == past
        assert (await w.crons.fire_due(plan, 10)).claimed == 0  # nothing due any more


async def test_fire_due_takes_at_most_limit(world: Any) -> None:
    async with world() as w:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        for i in range(3):
            await w.crons.create(cron(next_run_date=past + dt.timedelta(seconds=i)), None,
                                 max_per_user=0)

        def plan(row: dict[str, Any]) -> Firing:
            return Firing(run=None, next_run_date=row["next_run_date"],
                          occurrence=row["next_run_date"], why="skip")
        fired = await w.crons.fire_due(plan, 2)
        assert fired.claimed == 2 and fired.behind is True  # still due: tick again
        assert len(fired.skipped) == 2
