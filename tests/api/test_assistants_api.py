"""Assistant handlers in-process over the in-memory services: create, get, patch, delete,
search, count, versions, latest, graph; bounds at the edge; the owner pattern."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.conftest import SYSTEM_ASSISTANT

COLUMNS = {"assistant_id", "graph_id", "config", "context", "metadata", "name", "created_at",
           "updated_at", "version", "description"}


async def test_create_get_patch_versions_delete(make_api: Any) -> None:
    api = await make_api()
    aid = str(uuid.uuid4())
    status, made = await api.call("POST", "/assistants", json={
        "assistant_id": aid, "graph_id": "agent", "name": "first", "metadata": {"k": 1},
        "config": {"configurable": {"model": "m"}}})
    assert status == 200 and set(made) == COLUMNS
    assert (made["version"], made["name"], made["metadata"]) == (1, "first", {"k": 1})
    assert made["context"] == {"model": "m"}  # configurable mirrored into context
    assert await api.call("GET", f"/assistants/{aid}") == (200, made)
    assert (await api.call("POST", "/assistants", json={
        "assistant_id": aid, "graph_id": "agent"}))[0] == 409
    assert await api.call("POST", "/assistants", json={
        "assistant_id": aid, "graph_id": "agent", "if_exists": "do_nothing"}) == (200, made)
    assert (await api.call("POST", "/assistants", json={"graph_id": "nope"}))[0] == 404

    status, patched = await api.call("PATCH", f"/assistants/{aid}", json={
        "name": "second", "metadata": {"n": 2}})
    assert status == 200 and patched["version"] == 2
    assert (patched["name"], patched["metadata"]) == ("second", {"k": 1, "n": 2})
    status, versions = await api.call("POST", f"/assistants/{aid}/versions", json={})
    assert [v["version"] for v in versions] == [2, 1]
    status, back = await api.call("POST", f"/assistants/{aid}/latest", json={"version": 1})
    assert (status, back["version"], back["name"]) == (200, 1, "first")
    assert (await api.call("POST", f"/assistants/{aid}/latest", json={"version": 9}))[0] \
        == 404
    for bad in (0, -1, 2**31, 2**63):
        assert (await api.call("POST", f"/assistants/{aid}/latest", json={
            "version": bad}))[0] == 422, bad

    # The graph id names its default assistant; introspection reads the assistant first.
    status, default = await api.call("GET", "/assistants/agent")
    assert (status, default["assistant_id"]) == (200, SYSTEM_ASSISTANT)
    status, graph = await api.call("GET", f"/assistants/{aid}/graph")
    assert (status, graph["nodes"]) == (200, [{"id": "agent"}])
    assert (await api.call("GET", f"/assistants/{uuid.uuid4()}/schemas"))[0] == 404

    assert await api.call("DELETE", f"/assistants/{aid}") == (204, None)
    assert (await api.call("GET", f"/assistants/{aid}"))[0] == 404
    assert (await api.call("DELETE", f"/assistants/{aid}"))[0] == 404


async def test_search_count_and_bounds(make_api: Any) -> None:
    api = await make_api()
    for i in range(3):
        await api.call("POST", "/assistants", json={
            "graph_id": "agent", "name": f"bot-{i}", "metadata": {"i": i}})
    response = await api.client.post("/assistants/search", json={
        "limit": 2, "sort_by": "name", "sort_order": "asc", "name": "bot"})
    assert [a["name"] for a in await response.get_json()] == ["bot-0", "bot-1"]
    assert response.headers["X-Pagination-Next"] == "2"
    status, picked = await api.call("POST", "/assistants/search", json={
        "metadata": {"i": 2}, "select": ["name"]})
    assert picked == [{"name": "bot-2"}]
    assert await api.call("POST", "/assistants/count", json={}) == (200, 4)  # + default
    assert await api.call("POST", "/assistants/count", json={"name": "bot"}) == (200, 3)
    assert (await api.call("POST", "/assistants/count", json={"graph_id": "nope"}))[0] == 404
    for body in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"offset": 2**63}):
        status, answer = await api.call("POST", "/assistants/search", json=body)
        assert status == 422 and next(iter(body)) in answer["detail"], body


async def test_owner_pattern(make_api: Any) -> None:
    api = await make_api(owner_auth=True)
    status, mine = await api.call("POST", "/assistants", "alice", json={
        "graph_id": "agent", "metadata": {"k": 1}})
    assert status == 200 and mine["metadata"] == {"k": 1, "owner": "alice"}
    aid = mine["assistant_id"]
    await api.call("POST", "/assistants", "bob", json={"graph_id": "agent"})
    for method, path, body in (("GET", f"/assistants/{aid}", None),
                               ("PATCH", f"/assistants/{aid}", {"name": "x"}),
                               ("POST", f"/assistants/{aid}/versions", {}),
                               ("POST", f"/assistants/{aid}/latest", {"version": 1}),
                               ("DELETE", f"/assistants/{aid}", None)):
        assert (await api.call(method, path, "bob", json=body))[0] == 404, (method, path)
    assert api.assistants.rows[aid]["name"] == "Untitled"
    assert len(api.assistants.history[aid]) == 1  # bob's patch made no version
    assert (await api.call("POST", "/assistants", "bob", json={
        "assistant_id": aid, "graph_id": "agent", "if_exists": "do_nothing"}))[0] == 409
    # Search and count: one's own (the default assistant is the system's, not theirs).
    for user, expected in (("alice", 1), ("bob", 1), ("admin", 3)):
        assert await api.call("POST", "/assistants/count", user, json={}) == (200, expected)
        status, page = await api.call("POST", "/assistants/search", user, json={})
        assert len(page) == expected, user
    assert await api.call("GET", f"/assistants/{aid}", "admin") == (200, mine)
    assert (await api.call("DELETE", f"/assistants/{aid}", "alice"))[0] == 204
    assert aid not in api.assistants.rows
