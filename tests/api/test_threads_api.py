"""Thread handlers in-process over the in-memory services: create, get, patch, delete,
search, count, copy, prune, state; bounds at the edge; the owner pattern."""

from __future__ import annotations

import uuid
from typing import Any

FIELDS = {"thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "status",
          "config", "values", "interrupts", "error"}


def tid() -> str:
    return str(uuid.uuid4())


async def test_create_get_patch_delete(make_api: Any) -> None:
    api = await make_api()
    thread_id = tid()
    status, thread = await api.call("POST", "/threads", json={
        "thread_id": thread_id, "metadata": {"k": 1}, "ttl": 30})
    assert status == 200 and set(thread) == FIELDS
    assert (thread["thread_id"], thread["status"], thread["metadata"]) == (thread_id, "idle",
                                                                          {"k": 1})
    assert await api.call("GET", f"/threads/{thread_id}") == (200, thread)
    status, with_ttl = await api.call("GET", f"/threads/{thread_id}",
                                      query={"include": "ttl"})
    assert (with_ttl["ttl"]["ttl_minutes"], with_ttl["ttl"]["strategy"]) == (30.0, "delete")
    status, body = await api.call("POST", "/threads", json={"thread_id": thread_id})
    assert status == 409
    assert await api.call("POST", "/threads", json={
        "thread_id": thread_id, "if_exists": "do_nothing"}) == (200, thread)
    made = await api.call("POST", "/threads", json={})
    assert made[0] == 200 and uuid.UUID(made[1]["thread_id"])  # an id is made

    status, patched = await api.call("PATCH", f"/threads/{thread_id}",
                                     json={"metadata": {"n": 2}})
    assert status == 200 and patched["metadata"] == {"k": 1, "n": 2}
    status, body = await api.call("PATCH", f"/threads/{thread_id}", json={
        "metadata": {"k": 3}}, headers={"Prefer": "return=minimal"})
    assert (status, body) == (204, None)
    assert api.threads.rows[thread_id]["metadata"] == {"k": 3, "n": 2}

    assert await api.call("DELETE", f"/threads/{thread_id}") == (204, None)
    assert (await api.call("GET", f"/threads/{thread_id}"))[0] == 404
    assert (await api.call("DELETE", f"/threads/{thread_id}"))[0] == 404
    assert (await api.call("PATCH", f"/threads/{thread_id}", json={}))[0] == 404
    assert (await api.call("GET", "/threads/not-a-uuid"))[0] == 422


async def test_search_count_and_pagination(make_api: Any) -> None:
    api = await make_api()
    made = []
    for i in range(3):
        status, thread = await api.call("POST", "/threads", json={
            "metadata": {"i": i, "even": i % 2 == 0}})
        made.append(thread["thread_id"])
    response = await api.client.post("/threads/search", json={"limit": 2})
    page = await response.get_json()
    assert [t["thread_id"] for t in page] == [made[2], made[1]]  # newest first
    assert response.headers["X-Pagination-Next"] == "2"
    status, rest = await api.call("POST", "/threads/search", json={"limit": 2, "offset": 2})
    assert [t["thread_id"] for t in rest] == [made[0]]
    status, even = await api.call("POST", "/threads/search", json={
        "metadata": {"even": True}, "sort_order": "asc", "select": ["thread_id"]})
    assert even == [{"thread_id": made[0]}, {"thread_id": made[2]}]
    status, picked = await api.call("POST", "/threads/search", json={"ids": [made[1]]})
    assert [t["thread_id"] for t in picked] == [made[1]]
    assert (await api.call("POST", "/threads/search", json={"ids": ["x"]}))[0] == 400
    assert await api.call("POST", "/threads/count", json={}) == (200, 3)
    assert await api.call("POST", "/threads/count", json={"metadata": {"even": False}}) == (
        200, 1)
    assert await api.call("POST", "/threads/count", json={"status": "busy"}) == (200, 0)


async def test_bad_numbers_are_422_naming_the_field(make_api: Any) -> None:
    api = await make_api()
    for body in ({"limit": 0}, {"limit": 1001}, {"limit": -1}, {"offset": 2**63},
                 {"offset": -1}, {"limit": 1e20}):
        status, answer = await api.call("POST", "/threads/search", json=body)
        assert status == 422, body
        assert next(iter(body)) in answer["detail"], answer
    for ttl in (-1, 0, 1e308, 2**63):
        status, answer = await api.call("POST", "/threads", json={"ttl": ttl})
        assert status == 422, ttl
    assert api.threads.rows == {}


async def test_copy_prune_and_state(make_api: Any) -> None:
    api = await make_api()
    status, source = await api.call("POST", "/threads", json={"metadata": {"graph_id":
                                                                            "agent"}})
    source_id = source["thread_id"]
    status, copied = await api.call("POST", f"/threads/{source_id}/copy")
    assert status == 200 and copied["thread_id"] != source_id
    assert copied["metadata"] == {"graph_id": "agent"}
    assert (await api.call("POST", f"/threads/{tid()}/copy"))[0] == 409
    # No checkpoint yet: the empty state.
    status, state = await api.call("GET", f"/threads/{source_id}/state")
    assert status == 200 and state["values"] == {} and state["next"] == []
    assert await api.call("POST", f"/threads/{source_id}/history", json={}) == (200, [])
    status, pruned = await api.call("POST", "/threads/prune", json={
        "thread_ids": [source_id, tid()]})
    assert (status, pruned) == (200, {"pruned_count": 1})
    assert set(api.threads.rows) == {copied["thread_id"]}


async def test_owner_pattern(make_api: Any) -> None:
    api = await make_api(owner_auth=True)
    assert (await api.call("POST", "/threads", json={}))[0] == 401  # no credentials
    status, mine = await api.call("POST", "/threads", "alice", json={"metadata": {"k": 1}})
    assert status == 200 and mine["metadata"] == {"k": 1, "owner": "alice"}
    thread_id = mine["thread_id"]
    await api.call("POST", "/threads", "bob", json={})
    # Bob: as if it did not exist, and nothing changes.
    assert (await api.call("GET", f"/threads/{thread_id}", "bob"))[0] == 404
    assert (await api.call("PATCH", f"/threads/{thread_id}", "bob", json={
        "metadata": {"k": 2}}))[0] == 404
    assert (await api.call("DELETE", f"/threads/{thread_id}", "bob"))[0] == 404
    assert (await api.call("POST", f"/threads/{thread_id}/copy", "bob"))[0] == 409
    assert (await api.call("POST", "/threads", "bob", json={
        "thread_id": thread_id, "if_exists": "do_nothing"}))[0] == 409
    assert await api.call("POST", "/threads/prune", "bob", json={
        "thread_ids": [thread_id]}) == (200, {"pruned_count": 0})
    assert await api.call("GET", f"/threads/{thread_id}", "admin") == (200, mine)
    # Search and count: one's own only; the admin sees everything.
    for user, expected in (("alice", 1), ("bob", 1), ("admin", 2)):
        assert await api.call("POST", "/threads/count", user, json={}) == (200, expected)
        status, page = await api.call("POST", "/threads/search", user, json={})
        assert len(page) == expected
    status, page = await api.call("POST", "/threads/search", "alice", json={})
    assert [t["thread_id"] for t in page] == [thread_id]
    status, patched = await api.call("PATCH", f"/threads/{thread_id}", "alice", json={
        "metadata": {"k": 2}})
    assert patched["metadata"] == {"k": 2, "owner": "alice"}
    assert (await api.call("DELETE", f"/threads/{thread_id}", "alice"))[0] == 204
    assert thread_id not in api.threads.rows
