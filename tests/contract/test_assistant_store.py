"""The AssistantStore contract, run on the in-memory twin and on PostgreSQL alike.

A case that passes on one and fails on the other means the fake has drifted: fix the
fake (or the adapter), never the case.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from aegra.adapters.memory.assistants import MemoryAssistants
from aegra.adapters.postgres import migrate
from aegra.adapters.postgres.assistants import PgAssistants
from aegra.adapters.postgres.pool import PgPool
from aegra.domain.assistants import (
    COLUMNS,
    VERSION_COLUMNS,
    Changes,
    NewAssistant,
    Page,
    Query,
    ThreadCascade,
)
from aegra.domain.errors import NotFound
from tests.contract.support import pg_pool

GRAPHS = ["agent", "other"]
ALICE = {"owner": "alice"}
BOB = {"owner": "bob"}


def new(assistant_id: str, graph_id: str = "agent", *, name: str = "A",
        metadata: dict[str, Any] | None = None, config: dict[str, Any] | None = None
        ) -> NewAssistant:
    return NewAssistant(assistant_id=assistant_id, graph_id=graph_id, name=name,
                        description=None, config=config or {}, context={},
                        metadata=metadata if metadata is not None else dict(ALICE))


class MemoryHarness:
    def __init__(self) -> None:
        self.store = MemoryAssistants(GRAPHS)

    async def add_thread(self, thread_id: str, metadata: dict[str, Any]) -> None:
        self.store.threads[thread_id] = metadata

    async def add_run(self, run_id: str, thread_id: str, assistant_id: str,
                      status: str) -> None:
        self.store.runs[run_id] = (assistant_id, status)

    async def has_thread(self, thread_id: str) -> bool:
        return thread_id in self.store.threads


class PgHarness:
    def __init__(self, pool: PgPool) -> None:
        self.pool = pool
        self.store = PgAssistants(pool, GRAPHS)

    async def add_thread(self, thread_id: str, metadata: dict[str, Any]) -> None:
        await self.pool.execute("INSERT INTO thread (thread_id, metadata) VALUES ($1, $2)",
                                thread_id, metadata)

    async def add_run(self, run_id: str, thread_id: str, assistant_id: str,
                      status: str) -> None:
        await self.pool.execute(
            "INSERT INTO runs (run_id, thread_id, assistant_id, status, execution_params) "
            "VALUES ($1, $2, $3, $4, '{}')", run_id, thread_id, assistant_id, status)

    async def has_thread(self, thread_id: str) -> bool:
        return bool(await self.pool.fetchval(
            "SELECT count(*) FROM thread WHERE thread_id = $1", thread_id))


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> Any:
    """An async context manager factory yielding a harness over a fresh store."""
    dsn = None
    if request.param == "postgres":
        dsn = request.getfixturevalue("database_url")
        migrate.ensure_migrated(dsn)

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
        s = h.store
        row, created = await s.create(new("a1", metadata={"owner": "alice", "n": {"x": 1}}))
        assert created and list(row) == list(COLUMNS)
        assert (row["version"], row["created_at"]) == (1, row["updated_at"])
        assert await s.get("a1") == row
        assert await s.get("a1", where=ALICE) == row
        assert await s.create(new("a1", "other", name="B")) == (row, False)
        assert await s.create(new("a1"), where=BOB) == (None, False)  # exists, hidden
        for call in (s.get("a1", where=BOB), s.get("missing")):
            with pytest.raises(NotFound):
                await call
        # Rows of graphs no longer served are hidden from reads, search and count.
        await s.create(new("gone1", "gone"))
        with pytest.raises(NotFound):
            await s.get("gone1")
        assert await s.count(Query()) == 1


async def test_patch_versions_and_set_latest(backend: Any) -> None:
    async with backend() as h:
        s = h.store
        first, _ = await s.create(new("a1", config={"tags": ["t"]},
                                      metadata={"owner": "alice", "n": {"deep": 1}}))
        with pytest.raises(NotFound):
            await s.patch("a1", Changes(name="stolen"), where=BOB)
        v2 = await s.patch("a1", Changes(metadata={"n": {"x": 2}, "more": True}),
                           where=ALICE)
        assert (v2["version"], v2["config"], v2["name"]) == (2, {"tags": ["t"]}, "A")
        assert v2["metadata"] == {"owner": "alice", "n": {"x": 2}, "more": True}
        v3 = await s.patch("a1", Changes(name="Renamed", context={"c": 3}))
        assert (v3["version"], v3["name"], v3["context"]) == (3, "Renamed", {"c": 3})
        assert v3["created_at"] == first["created_at"]

        versions = await s.versions("a1", metadata=None, limit=10, offset=0)
        assert [v["version"] for v in versions] == [3, 2, 1]
        assert list(versions[0]) == list(VERSION_COLUMNS)
        assert versions[0]["created_at"] == v3["updated_at"]
        page = await s.versions("a1", metadata=None, limit=1, offset=1)
        assert [v["version"] for v in page] == [2]
        assert [v["version"] for v in await s.versions(
            "a1", metadata={"more": True}, limit=10, offset=0)] == [3, 2]
        assert await s.versions("a1", metadata={"none": 1}, limit=10, offset=0) == []
        for call in (s.versions("a1", metadata=None, limit=10, offset=0, where=BOB),
                     s.versions("nope", metadata=None, limit=10, offset=0),
                     s.set_latest("a1", 1, where=BOB), s.set_latest("a1", 99),
                     s.set_latest("nope", 1)):
            with pytest.raises(NotFound):
                await call
        back = await s.set_latest("a1", 1, where=ALICE)
        assert (back["version"], back["name"], back["metadata"]) == (
            1, "A", {"owner": "alice", "n": {"deep": 1}})
        assert await s.get("a1") == back
        assert (await s.patch("a1", Changes(description="d")))["version"] == 4


async def test_search_and_count(backend: Any) -> None:
    async with backend() as h:
        s = h.store
        await s.create(new("a1", name="First 100%", metadata={"owner": "alice", "t": "x",
                                                                "tags": ["p", "q"]}))
        await s.create(new("a2", "other", name="second", metadata={"owner": "alice"}))
        await s.create(new("b1", name="Third", metadata={"owner": "bob", "t": "x"}))

        async def ids(query: Query | None = None, page: Page | None = None, **kw: Any
                      ) -> list[str]:
            rows, _ = await s.search(query or Query(), page or Page(), **kw)
            return [r["assistant_id"] for r in rows]

        assert await ids() == ["b1", "a2", "a1"]  # newest first
        assert await ids(Query(graph_id="other")) == ["a2"]
        assert await ids(Query(name="100%")) == ["a1"]  # a literal substring
        assert await ids(Query(name="FIR")) == ["a1"]
        assert await ids(Query(metadata={"t": "x"})) == ["b1", "a1"]
        assert await ids(Query(metadata={"tags": ["q"]})) == ["a1"]
        assert await ids(where=ALICE) == ["a2", "a1"]
        assert await ids(where={"$or": [BOB, {"t": "nope"}]}) == ["b1"]
        assert await ids(where={"tags": {"$contains": "p"}}) == ["a1"]
        assert await ids(page=Page(sort_by="name", sort_order="asc")) == ["a1", "a2", "b1"]
        assert await ids(page=Page(sort_by="assistant_id", sort_order="asc")) == [
            "a1", "a2", "b1"]
        rows, next_offset = await s.search(Query(), Page(limit=2))
        assert (len(rows), next_offset) == (2, 2)
        rows, next_offset = await s.search(Query(), Page(limit=2, offset=2))
        assert ([r["assistant_id"] for r in rows], next_offset) == (["a1"], None)
        assert await s.count(Query()) == 3
        assert await s.count(Query(metadata={"t": "x"}), where=ALICE) == 1
        assert await s.count(Query(graph_id="agent", name="third")) == 1


async def test_delete_runs_and_thread_cascade(backend: Any) -> None:
    async with backend() as h:
        s = h.store
        await s.create(new("a1"))
        await s.create(new("a2"))
        await h.add_thread("t1", {"assistant_id": "a1", "owner": "alice"})
        await h.add_thread("t2", {"assistant_id": "a1", "owner": "bob"})
        await h.add_thread("t3", {"assistant_id": "a1", "owner": "alice"})
        await h.add_thread("t4", {"assistant_id": "a2"})
        await h.add_run("r1", "t1", "a1", "pending")
        await h.add_run("r2", "t1", "a1", "running")
        await h.add_run("r3", "t1", "a1", "success")
        await h.add_run("r4", "t4", "a2", "pending")

        assert sorted(await s.in_flight_runs("a1", where=ALICE)) == ["r1", "r2"]
        assert await s.in_flight_runs("a2") == ["r4"]
        for call in (s.in_flight_runs("a1", where=BOB), s.in_flight_runs("nope"),
                     s.delete("a1", where=BOB), s.delete("nope")):
            with pytest.raises(NotFound):
                await call
        assert sorted(await s.thread_ids("a1")) == ["t1", "t2", "t3"]

        deleted = await s.delete("a1", where=ALICE, threads=[
            ThreadCascade(thread_ids=["t1", "t2"], where=ALICE)])
        assert deleted == ["t1"]
        assert [await h.has_thread(t) for t in ("t1", "t2", "t3")] == [False, True, True]
        with pytest.raises(NotFound):
            await s.get("a1")
        assert await s.count(Query()) == 1

        assert await s.delete("a2", threads=[ThreadCascade()]) == ["t4"]
        assert not await h.has_thread("t4")
        assert await s.count(Query()) == 0
