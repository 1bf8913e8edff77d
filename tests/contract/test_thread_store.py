"""The ThreadStore contract, run on the in-memory twin and on PostgreSQL alike.

A case that passes on one and fails on the other means the fake has drifted: fix the
fake (or the adapter), never the case.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from aegra.adapters.langgraph.schema import ensure_langgraph_tables
from aegra.adapters.memory.threads import MemoryThreads
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.threads import PgThreads
from aegra.domain.errors import Conflict, NotFound
from aegra.domain.threads import ttl_info
from tests.contract.support import pg_pool

ALICE = {"owner": "alice"}
BOB = {"owner": "bob"}
FIELDS = {"thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "status",
          "config", "values", "interrupts", "error"}


def tid() -> str:
    return str(uuid.uuid4())


class MemoryHarness:
    def __init__(self) -> None:
        self.store = MemoryThreads()

    async def start_run(self, thread_id: str) -> None:
        self.store.active.add(thread_id)


class PgHarness:
    def __init__(self, pool: PgPool) -> None:
        self.pool = pool
        self.store = PgThreads(pool)

    async def start_run(self, thread_id: str) -> None:
        await self.pool.execute(
            "INSERT INTO assistant (assistant_id, graph_id, name) VALUES ('a', 'agent', 'a') "
            "ON CONFLICT DO NOTHING")
        await self.pool.execute(
            "INSERT INTO runs (run_id, thread_id, assistant_id, status, execution_params) "
            "VALUES ($1, $2, 'a', 'pending', '{}')", tid(), thread_id)


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> Any:
    """An async context manager factory yielding a harness over a fresh store."""
    dsn = None
    if request.param == "postgres":
        dsn = request.getfixturevalue("database_url")
        migrate.ensure_migrated(dsn)
        ensure_langgraph_tables(dsn)  # delete takes the checkpoint rows with the thread

    @asynccontextmanager
    async def open_backend() -> AsyncIterator[Any]:
        if dsn is None:
            yield MemoryHarness()
            return
        async with pg_pool(dsn) as pool:
            yield PgHarness(pool)

    return open_backend


async def test_create_get_and_conflicts(backend: Any) -> None:
    async with backend() as h:
        s, a = h.store, tid()
        thread, created = await s.create(a, {"owner": "alice", "n": 1}, None, "raise")
        assert created and set(thread) == FIELDS
        assert thread["status"] == "idle" and thread["values"] is None
        assert thread["interrupts"] == {} and thread["config"] == {}
        assert thread["created_at"] == thread["updated_at"]
        assert await s.get(a) == thread
        assert await s.get(a, where=ALICE) == thread
        with pytest.raises(Conflict):
            await s.create(a, {}, None, "raise")
        assert await s.create(a, {"x": 1}, None, "do_nothing") == (thread, False)
        assert await s.create(a, {}, None, "do_nothing", where=ALICE) == (thread, False)
        with pytest.raises(Conflict):  # exists but hidden: never handed over
            await s.create(a, {}, None, "do_nothing", where=BOB)
        for call in (s.get(a, where=BOB), s.get(tid()), s.row(a, where=BOB)):
            with pytest.raises(NotFound):
                await call
        row = await s.row(a)
        assert row["active_run"] is False and row["metadata"] == {"owner": "alice", "n": 1}

        ttl = ttl_info({"ttl": 30})
        b = (await s.create(tid(), {}, ttl, "raise"))[0]["thread_id"]
        assert "ttl" not in await s.get(b)
        assert (await s.get(b, include_ttl=True))["ttl"] == ttl
        assert "ttl" not in await s.get(a, include_ttl=True)


async def test_patch_merges_and_hides(backend: Any) -> None:
    async with backend() as h:
        s, a = h.store, tid()
        ttl = ttl_info({"ttl": 5})
        await s.create(a, {"owner": "alice", "n": 1}, ttl, "raise")
        with pytest.raises(NotFound):
            await s.patch(a, {"n": 9}, None, where=BOB)
        with pytest.raises(NotFound):
            await s.patch(tid(), {"n": 9}, None)
        patched = await s.patch(a, {"n": 2, "tag": "x"}, None, where=ALICE)
        assert patched["metadata"] == {"owner": "alice", "n": 2, "tag": "x"}
        assert patched["updated_at"] > patched["created_at"]
        assert (await s.get(a, include_ttl=True))["ttl"] == ttl  # kept when not given
        assert (await s.patch(a, None, None))["metadata"] == patched["metadata"]


async def test_delete_and_existing_only_visible(backend: Any) -> None:
    async with backend() as h:
        s = h.store
        mine = [tid(), tid()]
        theirs = tid()
        for t in mine:
            await s.create(t, dict(ALICE), None, "raise")
        await s.create(theirs, dict(BOB), None, "raise")
        everything = [*mine, theirs, tid()]
        assert set(await s.existing(everything)) == {*mine, theirs}
        assert set(await s.existing(everything, where=ALICE)) == set(mine)
        assert await s.existing([]) == []
        assert await s.delete([theirs], where=ALICE) == []
        assert await s.existing([theirs]) == [theirs]
        assert set(await s.delete(everything, where=ALICE)) == set(mine)
        assert await s.existing(everything) == [theirs]
        assert await s.delete([theirs]) == [theirs]
        assert await s.existing(everything) == []


async def test_copy(backend: Any) -> None:
    async with backend() as h:
        s, a = h.store, tid()
        await s.create(a, {"owner": "alice", "graph_id": "agent"}, ttl_info({"ttl": 1}),
                       "raise")
        await s.set_state(a, {"steps": 3}, {"task": [{"value": 1}]}, True)
        with pytest.raises(NotFound):
            await s.copy(a, tid(), where=BOB)
        with pytest.raises(NotFound):
            await s.copy(tid(), tid())
        b = tid()
        copied = await s.copy(a, b, where=ALICE)
        assert copied["thread_id"] == b and copied["status"] == "idle"
        assert copied["metadata"] == {"owner": "alice", "graph_id": "agent"}
        assert copied["values"] == {"steps": 3}
        assert copied["interrupts"] == {"task": [{"value": 1}]}
        assert "ttl" not in await s.get(b, include_ttl=True)
        c = tid()
        stamped = await s.copy(a, c, metadata={"owner": "admin"})
        assert stamped["metadata"] == {"owner": "admin"}
        assert (await s.get(a))["metadata"]["owner"] == "alice"


async def test_set_state_status(backend: Any) -> None:
    async with backend() as h:
        s, a = h.store, tid()
        await s.create(a, dict(ALICE), None, "raise")
        await s.set_state(a, {"x": 1}, {}, True)
        paused = await s.get(a)
        assert paused["status"] == "interrupted" and paused["values"] == {"x": 1}
        assert paused["state_updated_at"] >= paused["created_at"]
        await s.set_state(a, {"x": 2}, {}, False, where=BOB)  # hidden: nothing changes
        assert await s.get(a) == paused
        await s.set_state(a, {"x": 3}, {}, False, where=ALICE)
        assert (await s.get(a))["status"] == "idle"
        await h.start_run(a)
        assert (await s.row(a))["active_run"] is True
        await s.set_state(a, {"x": 4}, {}, False)
        assert (await s.get(a))["status"] == "busy"


async def _search_ids(s: Any, **kw: Any) -> list[str]:
    args: dict[str, Any] = {"metadata": None, "values": None, "status": None, "ids": None,
                            "limit": 100, "offset": 0, "sort_by": None, "sort_order": None,
                            "columns": None}
    args.update(kw)
    page, _ = await s.search(**args)
    return [t["thread_id"] for t in page]


async def test_search_and_count(backend: Any) -> None:
    async with backend() as h:
        s = h.store
        made = []
        for i in range(4):
            owner = ALICE if i < 3 else BOB
            t = tid()
            await s.create(t, {**owner, "i": i, "even": i % 2 == 0, "tags": ["a", f"t{i}"]},
                           None, "raise")
            made.append(t)
        await s.set_state(made[1], {"steps": 3, "m": [1, 2]}, {}, True)
        newest = list(reversed(made))

        assert await _search_ids(s) == newest
        assert await _search_ids(s, sort_order="asc") == made
        assert await _search_ids(s, sort_by="thread_id") == sorted(made, reverse=True)
        assert await _search_ids(s, sort_by="thread_id", sort_order="asc") == sorted(made)
        assert await _search_ids(s, where=ALICE) == newest[1:]
        assert await _search_ids(s, metadata={"even": True}) == [made[2], made[0]]
        assert await _search_ids(s, metadata={"tags": ["t1"]}) == [made[1]]
        assert await _search_ids(s, values={"m": [2]}) == [made[1]]
        assert await _search_ids(s, status="interrupted") == [made[1]]
        assert await _search_ids(s, ids=[made[0], made[3]], where=ALICE) == [made[0]]
        assert await _search_ids(s, where={"$or": [ALICE, BOB]}) == newest
        assert await _search_ids(s, where={"tags": {"$contains": "t3"}}) == [made[3]]
        # state_updated_at: the one state write is the newest.
        assert (await _search_ids(s, sort_by="state_updated_at"))[0] == made[1]

        page, more = await s.search(metadata=None, values=None, status=None, ids=None,
                                    limit=2, offset=1, sort_by=None, sort_order=None,
                                    columns=["thread_id", "status"])
        assert page == [{"thread_id": newest[1], "status": "idle"},
                        {"thread_id": newest[2], "status": "interrupted"}]
        assert more is True
        page, more = await s.search(metadata=None, values=None, status=None, ids=None,
                                    limit=2, offset=2, sort_by=None, sort_order=None,
                                    columns=None, where=ALICE)
        assert [t["thread_id"] for t in page] == [made[0]] and more is False
        assert set(page[0]) == FIELDS

        assert await s.count(metadata=None, values=None, status=None) == 4
        assert await s.count(metadata=None, values=None, status=None, where=BOB) == 1
        assert await s.count(metadata={"even": False}, values=None, status=None,
                             where=ALICE) == 1
        assert await s.count(metadata=None, values={"steps": 3}, status="interrupted") == 1
