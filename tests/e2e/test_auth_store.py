"""The store under custom auth, through the real SDK.

With tests/e2e/apps/auth_owner.py (the shared server) a namespace must start with the
caller's identity: anything else is a 403 and changes nothing. With
tests/e2e/apps/auth_store_rewrite.py the handler rewrites every namespace instead
(prepending the identity) and filters searches by owner, AND-ed with the caller's own
filter. Every number is bounded at the edge (422 naming the field).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError, PermissionDeniedError

from tests.e2e.auth_support import APPS, TOKENS, as_user, auth_server  # noqa: F401
from tests.e2e.conftest import base_env, write_project

pytestmark = pytest.mark.e2e


def test_store_namespace_must_be_the_callers(as_user) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob, admin = as_user("alice"), as_user("bob"), as_user("admin")
        await alice.store.put_item(["alice", "notes"], "n1", {"text": "hi"})
        await bob.store.put_item(["bob", "notes"], "b1", {"text": "bob's"})

        forbidden = [
            lambda: bob.store.put_item(["alice", "notes"], "n1", {"text": "pwned"}),
            lambda: bob.store.get_item(["alice", "notes"], "n1"),
            lambda: bob.store.delete_item(["alice", "notes"], "n1"),
            lambda: bob.store.search_items(["alice"]),
            lambda: bob.store.search_items([]),
            lambda: bob.store.list_namespaces(prefix=["alice"]),
            lambda: bob.store.list_namespaces(),
            lambda: alice.store.put_item(["notes"], "n2", {"text": "unscoped"}),
        ]
        for call in forbidden:
            with pytest.raises(PermissionDeniedError):
                await call()

        # Nothing changed: alice's item, as she wrote it, is still the only one of hers.
        mine = await alice.store.get_item(["alice", "notes"], "n1")
        assert mine["value"] == {"text": "hi"}
        assert [i["key"] for i in (await alice.store.search_items(["alice"]))["items"]] == [
            "n1"]
        with pytest.raises(NotFoundError):
            await admin.store.get_item(["notes"], "n2")

        # Bob's own views never show alice's items or namespaces.
        found = (await bob.store.search_items(["bob"]))["items"]
        assert [(i["namespace"], i["key"]) for i in found] == [(["bob", "notes"], "b1")]
        assert (await bob.store.list_namespaces(prefix=["bob"]))["namespaces"] == [
            ["bob", "notes"]]

        # The admin is unfiltered: reads alice's, sees every namespace.
        assert (await admin.store.get_item(["alice", "notes"], "n1"))["value"] == {
            "text": "hi"}
        assert (await admin.store.list_namespaces())["namespaces"] == [
            ["alice", "notes"], ["bob", "notes"]]
        everything = (await admin.store.search_items([]))["items"]
        assert sorted(i["key"] for i in everything) == ["b1", "n1"]

        # The owner deletes her own.
        await alice.store.delete_item(["alice", "notes"], "n1")
        with pytest.raises(NotFoundError):
            await admin.store.get_item(["alice", "notes"], "n1")
        assert (await admin.store.get_item(["bob", "notes"], "b1"))["value"] == {
            "text": "bob's"}

    asyncio.run(scenario())


def test_store_numbers_are_bounded(auth_server) -> None:  # noqa: F811
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    put = {"namespace": ["alice", "b"], "key": "k", "value": {"v": 1}}
    with httpx.Client(base_url=auth_server.url, headers=headers) as c:
        assert c.put("/store/items", json={**put, "ttl": 60}).status_code == 204
        search: list[tuple[dict[str, Any], str]] = [
            ({"limit": 0}, "limit"), ({"limit": -1}, "limit"), ({"limit": 1001}, "limit"),
            ({"limit": 1e20}, "limit"), ({"limit": "x"}, "limit"),
            ({"offset": -1}, "offset"), ({"offset": 2**63}, "offset"),
            ({"offset": 2**31}, "offset"), ({"offset": 1e300}, "offset")]
        for extra, field in search:
            r = c.post("/store/items/search", json={"namespace_prefix": ["alice"], **extra})
            assert r.status_code == 422 and r.json()["field"] == field, (extra, r.text)
        spaces: list[tuple[dict[str, Any], str]] = [
            ({"limit": 0}, "limit"), ({"limit": 10**6}, "limit"),
            ({"offset": 2**63}, "offset"), ({"max_depth": 0}, "max_depth"),
            ({"max_depth": 2**31}, "max_depth"), ({"max_depth": -5}, "max_depth")]
        for extra, field in spaces:
            r = c.post("/store/namespaces", json={"prefix": ["alice"], **extra})
            assert r.status_code == 422 and r.json()["field"] == field, (extra, r.text)
        for ttl in (0, -1, 1e308, 2**63, 10 * 366 * 24 * 60, "soon"):
            r = c.put("/store/items", json={**put, "ttl": ttl})
            assert r.status_code == 422 and r.json()["field"] == "ttl", (ttl, r.text)
        # The largest allowed values answer normally.
        edge = c.post("/store/items/search", json={"namespace_prefix": ["alice"],
                                                    "limit": 1000, "offset": 2**31 - 1})
        assert edge.status_code == 200 and edge.json() == {"items": []}
        deep = c.post("/store/namespaces", json={"prefix": ["alice"], "max_depth": 2**31 - 1,
                                                 "offset": 2**31 - 1, "limit": 1000})
        assert deep.status_code == 200 and deep.json() == {"namespaces": []}
        assert c.get("/store/items", params={"namespace": "alice.b", "key": "k"}
                     ).json()["value"] == {"v": 1}


def _client(url: str, who: str) -> Any:
    return get_client(url=url, headers={"Authorization": f"Bearer {TOKENS[who]}"})


def test_store_handler_rewrites_namespaces(start_server, database_url, tmp_path) -> None:
    write_project(tmp_path, auth={"path": f"{APPS / 'auth_store_rewrite.py'}:auth"})
    server = start_server(base_env(database_url, AUTH_TYPE="custom"))

    async def scenario() -> None:
        alice, bob = _client(server.url, "alice"), _client(server.url, "bob")
        admin = _client(server.url, "admin")
        # The same (namespace, key) from two users: two items, one each.
        await alice.store.put_item(["notes"], "k", {"text": "a", "n": 1})
        await bob.store.put_item(["notes"], "k", {"text": "b", "n": 1})
        got = await alice.store.get_item(["notes"], "k")
        assert got["namespace"] == ["alice", "notes"]
        assert got["value"] == {"text": "a", "n": 1, "owner": "alice"}
        assert (await bob.store.get_item(["notes"], "k"))["value"]["text"] == "b"
        assert (await admin.store.list_namespaces())["namespaces"] == [
            ["alice", "notes"], ["bob", "notes"]]
        assert (await alice.store.list_namespaces())["namespaces"] == [["alice", "notes"]]

        # An item under alice's namespace without her stamp: the search filter hides it.
        await admin.store.put_item(["alice", "notes"], "stray", {"text": "a", "n": 1})
        await alice.store.put_item(["notes"], "k2", {"text": "a2", "n": 2})

        async def keys(who: Any, **kw: Any) -> list[str]:
            return sorted(i["key"] for i in (await who.store.search_items(["notes"], **kw))[
                "items"])

        assert await keys(alice) == ["k", "k2"]
        assert await keys(alice, filter={"n": 1}) == ["k"]
        assert await keys(alice, filter={"text": "a"}) == ["k"]
        assert await keys(alice, filter={"owner": "bob"}) == []
        assert await keys(alice, filter={"owner": {"$ne": "alice"}}) == []
        assert await keys(bob) == ["k"]
        assert await keys(bob, filter={"n": 2}) == []

        # Deleting "notes"/"k" as bob removes bob's item only.
        await bob.store.delete_item(["notes"], "k")
        with pytest.raises(NotFoundError):
            await bob.store.get_item(["notes"], "k")
        assert (await alice.store.get_item(["notes"], "k"))["value"]["text"] == "a"
        with pytest.raises(PermissionDeniedError):
            await alice.store.put_item(["notes"], "forbidden", {})

    asyncio.run(scenario())
