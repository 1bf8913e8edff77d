"""Store handlers in-process over the in-memory services: put, get, search, list
namespaces, delete; bounds at the edge; namespaces under one's own identity."""

from __future__ import annotations

from typing import Any


async def put(api: Any, namespace: list[str], key: str, value: dict[str, Any],
              user: str | None = None) -> int:
    status, _ = await api.call("PUT", "/store/items", user, json={
        "namespace": namespace, "key": key, "value": value})
    return int(status)


async def test_put_get_search_namespaces_delete(make_api: Any) -> None:
    api = await make_api()
    assert await put(api, ["docs", "a"], "k1", {"n": 1, "tag": "x"}) == 204
    assert await put(api, ["docs", "b"], "k2", {"n": 2, "tag": "y"}) == 204
    assert await put(api, ["other"], "k3", {"n": 3}) == 204
    status, item = await api.call("GET", "/store/items", query={"namespace": "docs.a",
                                                                 "key": "k1"})
    assert status == 200
    assert (item["namespace"], item["key"], item["value"]) == (["docs", "a"], "k1",
                                                               {"n": 1, "tag": "x"})
    assert (await api.call("GET", "/store/items", query={"namespace": "docs.a",
                                                          "key": "nope"}))[0] == 404
    status, found = await api.call("POST", "/store/items/search", json={
        "namespace_prefix": ["docs"]})
    assert status == 200 and [i["key"] for i in found["items"]] == ["k2", "k1"]  # newest
    status, found = await api.call("POST", "/store/items/search", json={
        "namespace_prefix": ["docs"], "filter": {"tag": "x"}})
    assert [i["key"] for i in found["items"]] == ["k1"]
    status, spaces = await api.call("POST", "/store/namespaces", json={"max_depth": 1})
    assert spaces == {"namespaces": [["docs"], ["other"]]}
    status, spaces = await api.call("POST", "/store/namespaces", json={"prefix": ["docs"]})
    assert spaces == {"namespaces": [["docs", "a"], ["docs", "b"]]}
    assert await put(api, ["docs", "a"], "k1", {"n": 10}) == 204  # replaced
    assert (await api.call("GET", "/store/items", query={
        "namespace": "docs.a", "key": "k1"}))[1]["value"] == {"n": 10}
    assert await api.call("DELETE", "/store/items", json={"namespace": ["docs", "a"],
                                                         "key": "k1"}) == (204, None)
    assert (await api.call("GET", "/store/items", query={"namespace": "docs.a",
                                                          "key": "k1"}))[0] == 404


async def test_bad_input_is_422(make_api: Any) -> None:
    api = await make_api()
    for body in ({"namespace": [], "key": "k", "value": {}},
                 {"namespace": ["a.b"], "key": "k", "value": {}},
                 {"namespace": ["a"], "key": "k", "value": {}, "ttl": -1},
                 {"namespace": ["a"], "key": "k", "value": {}, "ttl": 1e308},
                 {"namespace": ["a"], "key": "k", "value": [1]}):
        assert (await api.call("PUT", "/store/items", json=body))[0] == 422, body
    for search in ({"limit": 0}, {"limit": -1}, {"limit": 10**9}, {"offset": -1},
                   {"offset": 2**63}, {"filter": {"n": {"$regex": "x"}}}):
        assert (await api.call("POST", "/store/items/search", json=search))[0] == 422, \
            search
    assert (await api.call("POST", "/store/namespaces", json={"max_depth": 0}))[0] == 422
    status, found = await api.call("POST", "/store/items/search", json={})
    assert found == {"items": []}


async def test_namespaces_belong_to_their_user(make_api: Any) -> None:
    api = await make_api(owner_auth=True)
    assert await put(api, ["alice", "notes"], "k", {"v": 1}, "alice") == 204
    assert await put(api, ["alice", "notes"], "k", {"v": 2}, "bob") == 403
    assert await put(api, ["bob"], "k", {"v": 1}, "bob") == 204
    query = {"namespace": "alice.notes", "key": "k"}
    assert (await api.call("GET", "/store/items", "bob", query=query))[0] == 403
    assert (await api.call("DELETE", "/store/items", "bob", json={
        "namespace": ["alice", "notes"], "key": "k"}))[0] == 403
    assert (await api.call("POST", "/store/items/search", "bob", json={
        "namespace_prefix": ["alice"]}))[0] == 403
    status, item = await api.call("GET", "/store/items", "alice", query=query)
    assert (status, item["value"]) == (200, {"v": 1})  # bob changed nothing
    status, found = await api.call("POST", "/store/items/search", "admin", json={})
    assert sorted(i["namespace"][0] for i in found["items"]) == ["alice", "bob"]
    assert (await api.call("DELETE", "/store/items", "alice", json={
        "namespace": ["alice", "notes"], "key": "k"}))[0] == 204
    assert (await api.call("GET", "/store/items", "admin", query=query))[0] == 404
