"""StoreService over MemoryItems and a scripted authorizer: what a handler's edits and
filters do to each operation (the e2e suites drive the same through real handlers)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from aegra.adapters.memory.items import MemoryItems
from aegra.domain import store as rules
from aegra.domain.auth import ANONYMOUS, Caller, Filter, FilterError
from aegra.domain.errors import Forbidden, Invalid
from aegra.services.store import StoreService

ALICE = Caller(identity="alice")
Handler = Callable[[Caller, str, dict[str, Any]], Filter | None]


class ScriptedAuth:
    """An ``Authorizer`` running a plain function; records every (action, value)."""

    enabled = True

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def authorize(self, caller: Caller, resource: str, action: str,
                        value: dict[str, Any]) -> Filter | None:
        assert resource == "store"
        self.seen.append((action, copy.deepcopy(value)))
        return self.handler(caller, action, value)


def _prefix_identity(caller: Caller, action: str, value: dict[str, Any]) -> Filter | None:
    value["namespace"] = [caller.identity, *(value["namespace"] or ())]
    if action == "put":
        value["value"]["owner"] = caller.identity
    return {"owner": caller.identity}


async def test_values_passed_are_the_platforms_and_edits_are_used() -> None:
    auth = ScriptedAuth(_prefix_identity)
    items = MemoryItems()
    svc = StoreService(items, auth)
    await svc.put(ALICE, namespace=("notes",), key="k", value={"t": 1}, index=False, ttl=5)
    # Stored under the rewritten namespace, with the stamp the handler added.
    stored = await items.get(("alice", "notes"), "k", refresh_ttl=None)
    assert stored is not None and stored.value == {"t": 1, "owner": "alice"}
    assert await items.get(("notes",), "k", refresh_ttl=None) is None
    got = await svc.get(ALICE, namespace=("notes",), key="k", refresh_ttl=True)
    assert got is not None and got.namespace == ["alice", "notes"]
    await svc.list_namespaces(ALICE, max_depth=3)
    await svc.search(ALICE, prefix=(), filter={"t": 1}, limit=5, offset=2, query="q")
    await svc.delete(ALICE, namespace=("notes",), key="k")
    assert await items.get(("alice", "notes"), "k", refresh_ttl=None) is None
    assert auth.seen == [
        ("put", {"namespace": ("notes",), "key": "k", "value": {"t": 1}, "index": False,
                 "ttl": 5}),
        ("get", {"namespace": ("notes",), "key": "k", "refresh_ttl": True}),
        ("list_namespaces", {"namespace": None, "suffix": None, "max_depth": 3,
                             "limit": 100, "offset": 0}),
        ("search", {"namespace": (), "filter": {"t": 1}, "limit": 5, "offset": 2,
                    "query": "q", "refresh_ttl": None}),
        ("delete", {"namespace": ("notes",), "key": "k"}),
    ]


async def test_search_filter_is_anded_and_other_filters_are_not_applied() -> None:
    items = MemoryItems()
    await items.put(("alice", "n"), "mine", {"owner": "alice", "t": 1}, index=None, ttl=None)
    await items.put(("alice", "n"), "stray", {"t": 1}, index=None, ttl=None)
    await items.put(("alice", "n"), "other", {"owner": "alice", "t": 2}, index=None, ttl=None)
    svc = StoreService(items, ScriptedAuth(_prefix_identity))
    found = await svc.search(ALICE, prefix=("n",))
    assert sorted(i.key for i in found) == ["mine", "other"]
    assert [i.key for i in await svc.search(ALICE, prefix=(), filter={"t": 1})] == ["mine"]
    # The caller's own condition on the filtered field is kept too: AND, not override.
    assert await svc.search(ALICE, prefix=(), filter={"owner": "bob"}) == []
    assert await svc.search(ALICE, prefix=(), filter={"owner": {"$ne": "alice"}}) == []
    # get ignores the returned filter, as on the platform: the namespace is the scope.
    stray = await svc.get(ALICE, namespace=("n",), key="stray")
    assert stray is not None and stray.value == {"t": 1}


async def test_handler_edits_are_checked_again() -> None:
    def dotted(caller: Caller, action: str, value: dict[str, Any]) -> None:
        value["namespace"] = ("a.b", *value["namespace"])

    svc = StoreService(MemoryItems(), ScriptedAuth(dotted))
    with pytest.raises(Invalid) as err:
        await svc.put(ALICE, namespace=("n",), key="k", value={})
    assert err.value.field == "namespace"

    def big_page(caller: Caller, action: str, value: dict[str, Any]) -> None:
        value["limit"] = 10**9

    with pytest.raises(Invalid) as err:
        await StoreService(MemoryItems(), ScriptedAuth(big_page)).search(ALICE, prefix=())
    assert err.value.field == "limit"


async def test_forbidden_stops_before_the_store() -> None:
    def deny(caller: Caller, action: str, value: dict[str, Any]) -> None:
        raise Forbidden("no")

    items = MemoryItems()
    with pytest.raises(Forbidden):
        await StoreService(items, ScriptedAuth(deny)).put(
            ALICE, namespace=("n",), key="k", value={})
    assert await items.search((), filter=None, limit=10, offset=0, query=None,
                              refresh_ttl=None) == []


async def test_noop_authorizer_passes_everything_through() -> None:
    from aegra.adapters.auth import NoAuth

    items = MemoryItems()
    svc = StoreService(items, NoAuth())
    await svc.put(ANONYMOUS, namespace=("a",), key="k", value={"v": 1})
    got = await svc.get(ANONYMOUS, namespace=("a",), key="k")
    assert got is not None and got.namespace == ["a"] and got.value == {"v": 1}
    assert await svc.list_namespaces(ANONYMOUS) == [["a"]]


def test_conjoin() -> None:
    assert rules.conjoin(None, None) is None
    assert rules.conjoin({"a": 1}, None) == {"a": 1}
    assert rules.conjoin(None, {"o": "x"}) == {"o": {"$eq": "x"}}
    assert rules.conjoin({"o": {"$ne": "y"}, "a": 1}, {"o": {"$eq": "x"}}) == {
        "o": {"$ne": "y", "$eq": "x"}, "a": 1}
    assert rules.conjoin({"o": "x"}, {"$and": [{"o": "x"}, {"p": {"$eq": {"k": 1}}}]}) == {
        "o": {"$eq": "x"}, "p": {"$eq": {"k": 1}}}
    for item, auth in (({"o": "y"}, {"o": "x"}), ({"o": 1}, {"o": True}),
                       (None, {"$and": [{"o": 1}, {"o": 2}]})):
        with pytest.raises(rules.Unsatisfiable):
            rules.conjoin(item, auth)
    for auth in ({"$or": [{"o": 1}, {"o": 2}]}, {"tags": {"$contains": "x"}}):
        with pytest.raises(FilterError):
            rules.conjoin(None, auth)


def test_bounds() -> None:
    assert rules.page(1, rules.MAX_OFFSET) == (1, rules.MAX_OFFSET)
    for limit, offset, field in ((0, 0, "limit"), (True, 0, "limit"), (1.5, 0, "limit"),
                                 (1, 2**63, "offset"), (1, -1, "offset")):
        with pytest.raises(Invalid) as err:
            rules.page(limit, offset)
        assert err.value.field == field
    assert rules.ttl(None) is None and rules.ttl(5) == 5.0
    for bad in (0, -1, float("inf"), float("nan"), rules.MAX_TTL_MINUTES + 1, "5"):
        with pytest.raises(Invalid):
            rules.ttl(bad)
    for depth in (0, 2**31, "2"):
        with pytest.raises(Invalid):
            rules.max_depth(depth)
