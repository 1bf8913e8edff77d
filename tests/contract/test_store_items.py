"""The ``StoreItems`` contract, run on ``MemoryItems`` and on ``PgItemStore`` (LangGraph's
PostgreSQL store, no index, no TTL) so the in-memory twin stays honest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from aegra.adapters import aio
from aegra.adapters.langgraph.persistence import LangGraphPersistence
from aegra.adapters.langgraph.schema import ensure_langgraph_tables
from aegra.adapters.langgraph.store import PgItemStore
from aegra.adapters.memory.items import MemoryItems
from aegra.domain.resource_ports import StoreItems
from aegra.domain.store import Item, SearchItem


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> Any:
    """How to open the store under test: memory, or a fresh PostgreSQL database."""
    if request.param == "memory":
        return None
    return request.getfixturevalue("database_url")


@asynccontextmanager
async def _open(dsn: str | None) -> AsyncIterator[StoreItems]:
    if dsn is None:
        yield MemoryItems()
        return
    await trio.to_thread.run_sync(ensure_langgraph_tables, dsn)
    async with aio.open_loop():
        lg = LangGraphPersistence(dsn, max_size=2)
        await lg.open()
        try:
            yield PgItemStore(lg, semantic=False, ttl_enabled=False)
        finally:
            await lg.close()


async def _put(items: StoreItems, ns: tuple[str, ...], key: str, value: dict[str, Any]
               ) -> None:
    await items.put(ns, key, value, index=None, ttl=None)


async def _keys(items: StoreItems, prefix: tuple[str, ...] = (), **kw: Any) -> list[str]:
    args: dict[str, Any] = {"filter": None, "limit": 10, "offset": 0, "query": None,
                            "refresh_ttl": None, **kw}
    return [i.key for i in await items.search(prefix, **args)]


async def test_put_get_update_delete(backend: str | None) -> None:
    async with _open(backend) as items:
        assert items.semantic is False
        await _put(items, ("docs", "u1"), "k", {"text": "one", "nested": {"a": [1, 2]}})
        got = await items.get(("docs", "u1"), "k", refresh_ttl=None)
        assert type(got) is Item
        assert got.namespace == ["docs", "u1"] and got.key == "k"
        assert got.value == {"text": "one", "nested": {"a": [1, 2]}}
        assert got.created_at == got.updated_at and got.created_at.endswith("+00:00")
        assert await items.get(("docs",), "k", refresh_ttl=None) is None
        assert await items.get(("docs", "u1"), "nope", refresh_ttl=None) is None
        assert await items.get((), "k", refresh_ttl=None) is None

        await _put(items, ("docs", "u1"), "k", {"text": "uno"})
        again = await items.get(("docs", "u1"), "k", refresh_ttl=None)
        assert again is not None and again.value == {"text": "uno"}
        assert again.created_at == got.created_at and again.updated_at > got.updated_at

        await items.delete(("docs", "u1"), "k")
        await items.delete(("docs", "u1"), "k")  # deleting nothing is not an error
        assert await items.get(("docs", "u1"), "k", refresh_ttl=None) is None


async def test_search_prefix_order_paging(backend: str | None) -> None:
    async with _open(backend) as items:
        await _put(items, ("docs", "u1"), "k1", {"n": 1})
        await _put(items, ("docs", "u2"), "k2", {"n": 2})
        await _put(items, ("docsx",), "k3", {"n": 3})
        await _put(items, ("docs",), "k4", {"n": 4})
        assert await _keys(items) == ["k4", "k3", "k2", "k1"]  # newest first
        assert await _keys(items, ("docs",)) == ["k4", "k2", "k1"]  # whole labels
        assert await _keys(items, ("docs", "u1")) == ["k1"]
        assert await _keys(items, ("doc",)) == []
        assert await _keys(items, limit=2, offset=1) == ["k3", "k2"]
        assert await _keys(items, offset=10) == []
        # Without an index a query changes nothing and nothing is scored.
        found = await items.search(("docs",), filter=None, limit=10, offset=0,
                                   query="one", refresh_ttl=None)
        assert [i.key for i in found] == ["k4", "k2", "k1"]
        assert all(type(i) is SearchItem and i.score is None for i in found)
        assert found[-1].namespace == ["docs", "u1"] and found[-1].value == {"n": 1}


async def test_search_filters(backend: str | None) -> None:
    async with _open(backend) as items:
        await _put(items, ("f",), "a", {"owner": "alice", "n": 1, "flag": True,
                                        "obj": {"x": 1, "y": [1, 2]}})
        await _put(items, ("f",), "b", {"owner": "bob", "n": 2.0, "flag": False})
        await _put(items, ("f",), "c", {"n": 3, "owner": None})
        await _put(items, ("f",), "d", {"other": 1})

        async def where(flt: dict[str, Any]) -> list[str]:
            return sorted(await _keys(items, ("f",), filter=flt))

        assert await where({"owner": "alice"}) == ["a"]
        assert await where({"owner": {"$eq": "bob"}}) == ["b"]
        assert await where({"n": 2}) == ["b"]  # JSON numbers: 2 == 2.0
        assert await where({"n": 1.0}) == ["a"]
        assert await where({"flag": True}) == ["a"]
        assert await where({"n": True}) == []  # true is not 1
        assert await where({"obj": {"$eq": {"y": [1, 2], "x": 1}}}) == ["a"]
        assert await where({"obj": {"$eq": {"x": 1}}}) == []
        assert await where({"owner": None}) == ["c"]
        # A missing field fails every condition, $ne included; JSON null does not.
        assert await where({"owner": {"$ne": "alice"}}) == ["b", "c"]
        assert await where({"owner": {"$ne": "alice", "$eq": "bob"}}) == ["b"]
        assert await where({"owner": "alice", "n": 2}) == []
        assert await where({"n": {"$gt": 1}}) == ["b", "c"]
        assert await where({"n": {"$gte": 2, "$lt": 3}}) == ["b"]
        assert await where({"n": {"$lte": 1}}) == ["a"]
        assert await where({"missing": {"$gt": 0}}) == []


async def test_list_namespaces(backend: str | None) -> None:
    async with _open(backend) as items:
        for ns in (("a", "x", "1"), ("a", "y"), ("b", "x"), ("b",), ("c", "x", "1")):
            await _put(items, ns, "k", {})

        async def names(**kw: Any) -> list[list[str]]:
            args: dict[str, Any] = {"prefix": None, "suffix": None, "max_depth": None,
                                    "limit": 100, "offset": 0, **kw}
            return await items.list_namespaces(**args)

        assert await names() == [["a", "x", "1"], ["a", "y"], ["b"], ["b", "x"],
                                 ["c", "x", "1"]]
        assert await names(prefix=("a",)) == [["a", "x", "1"], ["a", "y"]]
        assert await names(prefix=("b",)) == [["b"], ["b", "x"]]
        assert await names(suffix=("x",)) == [["b", "x"]]
        assert await names(prefix=("*", "x")) == [["a", "x", "1"], ["b", "x"],
                                                  ["c", "x", "1"]]
        assert await names(suffix=("x", "1"), prefix=("c",)) == [["c", "x", "1"]]
        assert await names(max_depth=1) == [["a"], ["b"], ["c"]]
        assert await names(max_depth=2, prefix=("a",)) == [["a", "x"], ["a", "y"]]
        assert await names(limit=2, offset=1) == [["a", "y"], ["b"]]
        assert await names(prefix=("z",)) == []
