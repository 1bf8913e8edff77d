"""The store API driven by every method of the official SDK's async store client.

One server per test, many calls per server. SDK scenarios are asyncio coroutines run
with ``asyncio.run`` from plain sync tests (the suite itself runs under pytest-trio).
TTL is checked where it lives, in the ``store`` table's ``expires_at``/``ttl_minutes``.
"""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError
from psycopg.conninfo import conninfo_to_dict

from tests.e2e.conftest import GRAPHS, base_env, write_project

TTL = {"default_ttl": 10, "refresh_on_read": False, "sweep_interval_minutes": 60}
INDEX = {"dims": 64, "embed": f"{GRAPHS / 'embed.py'}:embed", "fields": ["text"]}


def _ttl_row(dsn: str, namespace: str, key: str) -> tuple[int | None, object]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT ttl_minutes, expires_at FROM store WHERE prefix = %s "
                           "AND key = %s", (namespace, key)).fetchone()
    assert row is not None
    return row[0], row[1]


async def _crud(url: str) -> None:
    store = get_client(url=url).store
    assert await store.put_item(["docs", "u1"], "k1", {"text": "one", "n": 1}) is None
    await store.put_item(["docs", "u1"], "k2", {"text": "two", "n": 2, "kind": "x"})
    await store.put_item(["docs", "u2"], "k3", {"text": "three", "n": 3, "kind": "x"})
    await store.put_item(["other"], "k4", {"text": "four", "n": 4, "nested": {"a": [1, 2]}})

    item = await store.get_item(["docs", "u1"], "k1")
    assert set(item) == {"namespace", "key", "value", "created_at", "updated_at"}
    assert item["namespace"] == ["docs", "u1"] and item["key"] == "k1"
    assert item["value"] == {"text": "one", "n": 1}
    assert item["created_at"].endswith("+00:00") and "T" in item["updated_at"]
    assert (await store.get_item(["other"], "k4"))["value"]["nested"] == {"a": [1, 2]}

    # An update keeps created_at, moves updated_at, replaces the value.
    await store.put_item(["docs", "u1"], "k1", {"text": "uno", "n": 1})
    again = await store.get_item(["docs", "u1"], "k1")
    assert again["value"] == {"text": "uno", "n": 1}
    assert again["created_at"] == item["created_at"]
    assert again["updated_at"] > item["updated_at"]

    # Search: newest first, whole-label prefixes, filters, paging, items' exact shape.
    found = (await store.search_items(["docs"]))["items"]
    assert [i["key"] for i in found] == ["k1", "k3", "k2"]
    assert all(i["score"] is None for i in found)
    assert set(found[0]) == {"namespace", "key", "value", "created_at", "updated_at", "score"}
    assert [i["key"] for i in (await store.search_items([]))["items"]] == ["k1", "k4", "k3", "k2"]
    assert (await store.search_items(["doc"]))["items"] == []
    assert [i["key"] for i in (await store.search_items(["docs", "u2"]))["items"]] == ["k3"]
    by_kind = await store.search_items([], filter={"kind": "x"})
    assert sorted(i["key"] for i in by_kind["items"]) == ["k2", "k3"]
    by_op = await store.search_items([], filter={"n": {"$gte": 2}, "kind": {"$ne": "y"}})
    assert sorted(i["key"] for i in by_op["items"]) == ["k2", "k3"]
    lt = await store.search_items(["docs"], filter={"n": {"$lt": 3}})
    assert sorted(i["key"] for i in lt["items"]) == ["k1", "k2"]
    page = await store.search_items([], limit=2, offset=1)
    assert [i["key"] for i in page["items"]] == ["k4", "k3"]
    assert (await store.search_items([], limit=2, offset=10))["items"] == []
    # Without an index a query cannot rank: it lists, unscored.
    q = await store.search_items(["docs"], query="one", refresh_ttl=False)
    assert [i["key"] for i in q["items"]] == ["k1", "k3", "k2"]

    # Namespaces: sorted, prefix/suffix on whole labels, "*" wildcard, depth, paging.
    await store.put_item(["docs", "u1", "deep"], "k5", {"text": "five"})
    ns = await store.list_namespaces()
    assert ns == {"namespaces": [["docs", "u1"], ["docs", "u1", "deep"], ["docs", "u2"],
                                 ["other"]]}
    assert (await store.list_namespaces(prefix=["docs", "u1"]))["namespaces"] == [
        ["docs", "u1"], ["docs", "u1", "deep"]]
    assert (await store.list_namespaces(suffix=["u2"]))["namespaces"] == [["docs", "u2"]]
    assert (await store.list_namespaces(prefix=["docs", "*", "deep"]))["namespaces"] == [
        ["docs", "u1", "deep"]]
    assert (await store.list_namespaces(max_depth=1))["namespaces"] == [["docs"], ["other"]]
    assert (await store.list_namespaces(prefix=["docs"], max_depth=2))["namespaces"] == [
        ["docs", "u1"], ["docs", "u2"]]
    assert (await store.list_namespaces(limit=2, offset=1))["namespaces"] == [
        ["docs", "u1", "deep"], ["docs", "u2"]]
    assert (await store.list_namespaces(prefix=["nope"]))["namespaces"] == []

    # Delete: gone afterwards, idempotent, neighbours untouched.
    assert await store.delete_item(["docs", "u1"], "k1") is None
    with pytest.raises(NotFoundError) as missing:
        await store.get_item(["docs", "u1"], "k1")
    assert "k1" in str(missing.value)
    await store.delete_item(["docs", "u1"], "k1")
    assert (await store.get_item(["docs", "u1"], "k2"))["key"] == "k2"

    # Client-side and server-side refusals.
    with pytest.raises(ValueError):
        await store.put_item(["a.b"], "k", {"v": 1})
    with pytest.raises(UnprocessableEntityError):
        await store.search_items([], filter={"n": {"$regex": "x"}})
    with pytest.raises(UnprocessableEntityError):
        await store.put_item([], "k", {"v": 1})


async def _ttl(url: str, dsn: str) -> None:
    store = get_client(url=url).store
    await store.put_item(["t"], "explicit", {"v": 1}, ttl=5)
    await store.put_item(["t"], "default", {"v": 2})
    minutes, first = _ttl_row(dsn, "t", "explicit")
    assert minutes == 5
    assert _ttl_row(dsn, "t", "default")[0] == 10  # store.ttl.default_ttl
    await asyncio.sleep(0.01)
    # refresh_on_read is false in aegra.json: a plain read leaves the expiry alone ...
    await store.get_item(["t"], "explicit")
    assert _ttl_row(dsn, "t", "explicit")[1] == first
    await store.get_item(["t"], "explicit", refresh_ttl=False)
    assert _ttl_row(dsn, "t", "explicit")[1] == first
    # ... refresh_ttl=true pushes it forward, on get and on search.
    await store.get_item(["t"], "explicit", refresh_ttl=True)
    _, refreshed = _ttl_row(dsn, "t", "explicit")
    assert refreshed > first
    await asyncio.sleep(0.01)
    found = await store.search_items(["t"], refresh_ttl=True)
    assert {i["key"] for i in found["items"]} == {"explicit", "default"}
    assert _ttl_row(dsn, "t", "explicit")[1] > refreshed


def test_store_crud_search_namespaces_ttl(start_server, database_url, tmp_path):
    write_project(tmp_path, store={"ttl": TTL})
    server = start_server(base_env(database_url))
    asyncio.run(_crud(server.url))
    asyncio.run(_ttl(server.url, database_url))
    assert httpx.get(server.url + "/info").json()["features"]["store_semantic_search"] is False

    # Raw HTTP: the forms the SDK does not produce, and the 422s.
    c = httpx.Client(base_url=server.url)
    put = {"namespace": ["raw", "ns"], "key": "q", "value": {"v": 1}}
    assert c.put("/store/items", json=put).status_code == 204
    multi = c.get("/store/items", params=[("namespace", "raw"), ("namespace", "ns"), ("key", "q")])
    assert multi.status_code == 200 and multi.json()["namespace"] == ["raw", "ns"]
    assert c.request("DELETE", "/store/items",
                     params={"namespace": "raw.ns", "key": "q"}).status_code == 204
    assert c.get("/store/items", params={"namespace": "raw.ns", "key": "q"}).status_code == 404
    bad = [
        c.get("/store/items", params={"namespace": "docs"}),
        c.get("/store/items", params={"namespace": "a..b", "key": "k"}),
        c.get("/store/items", params={"namespace": "a", "key": "k", "refresh_ttl": "maybe"}),
        c.put("/store/items", json={**put, "value": [1, 2]}),
        c.put("/store/items", json={**put, "namespace": ["a.b"]}),
        c.put("/store/items", json={**put, "namespace": ["a", ""]}),
        c.put("/store/items", json={**put, "namespace": []}),
        c.put("/store/items", json={**put, "key": ""}),
        c.put("/store/items", json={**put, "index": True}),
        c.put("/store/items", json={**put, "ttl": -1}),
        c.put("/store/items", json={"namespace": ["a"], "value": {}}),
        c.post("/store/items/search", json={"namespace_prefix": "docs"}),
        c.post("/store/items/search", json={"namespace_prefix": [], "limit": -1}),
        c.post("/store/items/search", json={"namespace_prefix": [], "offset": -1}),
        c.post("/store/namespaces", json={"max_depth": 0}),
        c.post("/store/namespaces", json={"prefix": ["a.b"]}),
        c.request("DELETE", "/store/items", json={"namespace": ["a"]}),
    ]
    for r in bad:
        assert r.status_code == 422, (r.request.method, r.request.url, r.text)
        assert r.json()["error"] == "validation_error" and r.json()["detail"]
    assert bad[3].json()["field"] == "value"
    assert bad[0].json()["field"] == "key"
    spec = c.get("/openapi.json").json()
    assert {"put", "get", "delete"} <= set(spec["paths"]["/store/items"])
    assert "PutItem" in spec["components"]["schemas"]


async def _semantic(url: str) -> None:
    store = get_client(url=url).store
    await store.put_item(["mem", "u1"], "both", {"text": "apple banana cherry"})
    await store.put_item(["mem", "u1"], "exact", {"text": "apple banana"})
    await store.put_item(["mem", "u2"], "other", {"text": "dog cat"})
    await store.put_item(["mem", "u2"], "unindexed", {"text": "apple banana"}, index=False)
    await store.put_item(["mem", "u2"], "field", {"text": "mouse", "alt": "banana pie"},
                         index=["alt"])

    ranked = (await store.search_items(["mem"], query="apple banana"))["items"]
    keys = [i["key"] for i in ranked]
    assert keys[:3] == ["exact", "both", "field"]
    assert keys[-1] == "other" and "unindexed" not in keys
    scores = [i["score"] for i in ranked]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert scores[1] == pytest.approx(2 / 6 ** 0.5, abs=1e-5)
    assert scores[-1] == pytest.approx(0.0, abs=1e-5)
    assert ranked[0]["namespace"] == ["mem", "u1"] and ranked[0]["value"] == {
        "text": "apple banana"}
    # Query + prefix + filter + paging compose.
    u2 = (await store.search_items(["mem", "u2"], query="dog"))["items"]
    assert u2[0]["key"] == "other" and u2[0]["score"] == pytest.approx(1 / 2 ** 0.5, abs=1e-5)
    second = (await store.search_items(["mem"], query="apple banana", limit=1, offset=1))
    assert [i["key"] for i in second["items"]] == ["both"]
    filtered = await store.search_items([], query="apple", filter={"text": "dog cat"})
    assert [i["key"] for i in filtered["items"]] == ["other"]
    # Re-putting re-embeds: "other" now matches the query exactly.
    await store.put_item(["mem", "u2"], "other", {"text": "apple banana"})
    top = (await store.search_items(["mem"], query="apple banana", limit=3))["items"]
    assert {top[0]["key"], top[1]["key"]} == {"exact", "other"}
    # Listing without a query still returns everything, unscored.
    listed = (await store.search_items(["mem"], limit=10))["items"]
    assert len(listed) == 5 and all(i["score"] is None for i in listed)


def test_store_semantic_search(start_server, database_url, tmp_path):
    write_project(tmp_path, store={"index": INDEX})
    server = start_server(base_env(database_url))
    assert httpx.get(server.url + "/info").json()["features"]["store_semantic_search"] is True
    asyncio.run(_semantic(server.url))
    # Without store.ttl a per-item ttl is not honoured: nothing would expire it.
    asyncio.run(get_client(url=server.url).store.put_item(["x"], "k", {"v": 1}, ttl=5))
    assert _ttl_row(database_url, "x", "k") == (None, None)


def test_store_without_pgvector_runs_unindexed(start_server, make_database, pg_admin_dsn,
                                               tmp_path):
    # pgvector's extension is not "trusted": a role without superuser cannot create it.
    # Empty, not the migrated template: the role must own the tables, so it migrates them.
    dsn = make_database()
    params = conninfo_to_dict(dsn)
    name, admin = params["dbname"], params.get("user", "postgres")
    role = f"r_{name}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER')
        conn.execute(f'ALTER DATABASE "{name}" OWNER TO "{role}"')
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'ALTER SCHEMA public OWNER TO "{role}"')
    user_dsn = dsn.replace(f"{admin}:", f"{role}:", 1)
    assert user_dsn != dsn
    write_project(tmp_path, store={"index": INDEX})
    server = None
    try:
        server = start_server(base_env(user_dsn))
        _unindexed(server)
    finally:
        if server is not None:
            server.stop()
        # Hand everything back so the role can go (the database is dropped by its fixture).
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'REASSIGN OWNED BY "{role}" TO "{admin}"')
            conn.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP ROLE "{role}"')


def _unindexed(server) -> None:
    assert httpx.get(server.url + "/info").json()["features"]["store_semantic_search"] is False
    warnings = [line for line in server.logs().splitlines()
                if "store.semantic_search_disabled" in line]
    assert len(warnings) == 1 and "vector" in warnings[0]

    async def scenario() -> None:
        store = get_client(url=server.url).store
        await store.put_item(["m"], "a", {"text": "apple banana"})
        await store.put_item(["m"], "b", {"text": "dog cat"})
        found = (await store.search_items(["m"], query="apple"))["items"]
        assert sorted(i["key"] for i in found) == ["a", "b"]
        assert all(i["score"] is None for i in found)
        assert (await store.get_item(["m"], "a"))["value"] == {"text": "apple banana"}

    asyncio.run(scenario())
