"""Threads and thread state through the official ``langgraph_sdk`` async client.

One server per test function, many SDK calls each (the suite runs on 2 cores). Each SDK
scenario is an asyncio coroutine run with ``asyncio.run`` from a sync test, since the
suite itself runs under pytest-trio. Expected shapes and codes were taken from the
``langgraph dev`` oracle (LangGraph Platform) with the same calls.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)

from tests.e2e.conftest import GRAPHS, base_env, write_project

HI = {"type": "human", "content": "hi", "id": "m1"}


@pytest.fixture
def server(tmp_path, start_server, database_url):
    write_project(tmp_path, {"agent": f"{GRAPHS / 'echo.py'}:graph",
                             "sub": f"{GRAPHS / 'with_subgraph.py'}:graph"})
    return start_server(base_env(database_url))


def _ref(tid: str, checkpoint_id: str) -> dict:
    return {"thread_id": tid, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}


async def _crud(url: str) -> None:
    c = get_client(url=url)
    t = await c.threads.create(metadata={"owner": "ana", "n": 1})
    tid = t["thread_id"]
    assert uuid.UUID(tid).version == 7  # time-ordered, as the platform's
    assert t["status"] == "idle" and t["metadata"] == {"owner": "ana", "n": 1}
    assert t["values"] is None and t["interrupts"] == {} and t["config"] == {}
    assert t["created_at"] == t["updated_at"] and t["created_at"].endswith("+00:00")
    assert (await c.threads.get(tid)) == t

    with pytest.raises(ConflictError, match=tid):
        await c.threads.create(thread_id=tid)
    assert (await c.threads.create(thread_id=tid, if_exists="do_nothing")) == t
    own = str(uuid.uuid4())
    made = await c.threads.create(thread_id=own.upper(), graph_id="agent", ttl=30)
    assert made["thread_id"] == own and made["metadata"] == {"graph_id": "agent"}
    ttl = (await c.threads.get(own, include=["ttl"]))["ttl"]
    assert ttl["strategy"] == "delete" and ttl["ttl_minutes"] == 30
    assert "ttl" not in await c.threads.get(own)

    missing = str(uuid.uuid4())
    for call in (c.threads.get(missing), c.threads.delete(missing),
                 c.threads.update(missing, metadata={}), c.threads.get_state(missing),
                 c.threads.get_history(missing)):
        with pytest.raises(NotFoundError, match=missing):
            await call
    with pytest.raises(ConflictError):  # the platform answers copy of a missing id so
        await c.threads.copy(missing)
    with pytest.raises(UnprocessableEntityError, match="must be a UUID"):
        await c.threads.create(thread_id="not-a-uuid")
    with pytest.raises(UnprocessableEntityError, match="metadata"):
        await c.http.post("/threads", json={"metadata": "nope"})

    patched = await c.threads.update(tid, metadata={"n": 2, "tag": "x"})
    assert patched["metadata"] == {"owner": "ana", "n": 2, "tag": "x"}  # merged
    assert patched["updated_at"] > t["updated_at"] and patched["created_at"] == t["created_at"]
    assert await c.threads.update(tid, metadata={"z": True}, return_minimal=True) is None
    assert (await c.threads.get(tid))["metadata"]["z"] is True

    # Empty state before any checkpoint: 200, never 404, on a thread with and without graph.
    for thread_id in (tid, own):
        empty = await c.threads.get_state(thread_id)
        assert empty["values"] == {} and empty["next"] == [] and empty["tasks"] == []
        assert empty["checkpoint"] == {"thread_id": thread_id, "checkpoint_ns": "",
                                       "checkpoint_id": None}
        assert empty["parent_checkpoint"] is None and empty["interrupts"] == []
        assert await c.threads.get_history(thread_id) == []
    with pytest.raises(BadRequestError, match="no assigned graph ID"):
        await c.threads.update_state(tid, {"steps": 1}, as_node="think")

    await c.threads.delete(own)
    with pytest.raises(NotFoundError):
        await c.threads.get(own)
    async with httpx.AsyncClient(base_url=url) as h:
        assert (await h.delete(f"/threads/{tid}")).status_code == 204
        assert (await h.get("/threads/not-a-uuid")).status_code == 422


async def _search(url: str) -> None:
    c = get_client(url=url)
    made = []
    for i in range(5):
        t = await c.threads.create(metadata={"graph_id": "agent", "i": i, "even": i % 2 == 0})
        made.append(t["thread_id"])
    await c.threads.update_state(made[1], {"messages": [HI], "steps": 3}, as_node="think")
    await c.threads.update_state(made[3], {"steps": 4}, as_node="reply")
    newest_first = list(reversed(made))

    found = await c.threads.search(limit=100)
    assert [t["thread_id"] for t in found] == newest_first  # default: created_at desc
    assert [t["thread_id"] for t in await c.threads.search(limit=2, offset=1)] == \
        newest_first[1:3]
    asc = await c.threads.search(sort_by="created_at", sort_order="asc", limit=100)
    assert [t["thread_id"] for t in asc] == made
    by_id = await c.threads.search(sort_by="thread_id", limit=100)
    assert [t["thread_id"] for t in by_id] == sorted(made, reverse=True)
    assert {t["thread_id"] for t in await c.threads.search(metadata={"even": True})} == \
        {made[0], made[2], made[4]}
    assert [t["thread_id"] for t in await c.threads.search(values={"steps": 3})] == [made[1]]
    assert [t["thread_id"] for t in await c.threads.search(status="interrupted")] == [made[1]]
    assert {t["thread_id"] for t in await c.threads.search(ids=[made[0], made[4]])} == \
        {made[0], made[4]}
    picked = await c.threads.search(ids=[made[1]], select=["thread_id", "status", "values"])
    assert picked == [{"thread_id": made[1], "status": "interrupted",
                       "values": {"messages": [{**HI, "additional_kwargs": {},
                                                "response_metadata": {}, "name": None}],
                                  "steps": 3}}]
    extracted = await c.threads.search(ids=[made[1]], select=["thread_id"],
                                       extract={"last": "values.messages[-1].content",
                                                "i": "metadata.i"})
    assert extracted == [{"thread_id": made[1], "extracted": {"last": "hi", "i": 1}}]
    thread = await c.threads.get(made[1])
    assert thread["values"]["steps"] == 3 and thread["status"] == "interrupted"
    assert thread["state_updated_at"] >= thread["created_at"]
    assert (await c.threads.get(made[3]))["status"] == "idle"  # reply -> END: nothing next

    assert await c.threads.count() == 5
    assert await c.threads.count(metadata={"even": False}) == 2
    assert await c.threads.count(status="interrupted") == 1
    assert await c.threads.count(values={"steps": 4}) == 1
    with pytest.raises(UnprocessableEntityError, match="select"):
        await c.threads.search(select=["nope"])
    with pytest.raises(UnprocessableEntityError, match="limit"):
        await c.threads.search(limit=0)
    async with httpx.AsyncClient(base_url=url) as h:
        page = await h.post("/threads/search", json={"limit": 2})
        assert page.headers["X-Pagination-Next"] == "2"
        assert (await h.post("/threads/count", json={})).json() == 5

    # prune: unknown ids are skipped; delete removes thread and checkpoints
    gone = await c.threads.prune([made[1], str(uuid.uuid4())])
    assert gone == {"pruned_count": 1}
    with pytest.raises(NotFoundError):
        await c.threads.get_state(made[1])
    assert await c.threads.prune([made[3]], strategy="keep_latest") == {"pruned_count": 1}
    assert (await c.threads.get_state(made[3]))["values"] == {"messages": [], "steps": 4}


def test_thread_crud_search_count_prune(server):
    asyncio.run(_crud(server.url))
    asyncio.run(_search(server.url))


HI_STORED = {**HI, "additional_kwargs": {}, "response_metadata": {}, "name": None}


async def _state_and_history(url: str) -> None:
    """The issue's acceptance test: update_state on echo (think -> reply)."""
    c = get_client(url=url)
    tid = (await c.threads.create(graph_id="agent"))["thread_id"]
    first = await c.threads.update_state(tid, {"messages": [HI]}, as_node="think")
    cp1 = first["checkpoint"]
    assert cp1 == _ref(tid, cp1["checkpoint_id"]) and cp1["checkpoint_id"]

    s1 = await c.threads.get_state(tid)
    assert s1["values"] == {"messages": [HI_STORED]}
    assert s1["next"] == ["reply"]  # as if think had run: reply is pending
    [task] = s1["tasks"]
    assert task["name"] == "reply" and task["id"] and task["error"] is None
    assert task["interrupts"] == [] and task["checkpoint"] is None and task["state"] is None
    assert task["result"] is None
    assert s1["checkpoint"] == cp1 and s1["parent_checkpoint"] is None
    assert s1["metadata"]["source"] == "update" and s1["metadata"]["step"] == 0
    assert s1["metadata"]["graph_id"] == "agent" and "checkpoint_ns" not in s1["metadata"]
    assert s1["created_at"] and s1["interrupts"] == []
    thread = await c.threads.get(tid)
    assert thread["status"] == "interrupted"  # pending next, as the platform reports
    assert thread["values"] == s1["values"] and thread["interrupts"] == {}

    cp2 = (await c.threads.update_state(tid, {"steps": 7}, as_node="reply"))["checkpoint"]
    s2 = await c.threads.get_state(tid)
    assert s2["values"] == {"messages": [HI_STORED], "steps": 7}
    assert s2["next"] == [] and s2["tasks"] == []
    assert s2["checkpoint"] == cp2 and s2["parent_checkpoint"] == cp1
    assert s2["metadata"]["step"] == 1 and s2["metadata"]["source"] == "update"
    assert (await c.threads.get(tid))["status"] == "idle"

    history = await c.threads.get_history(tid)
    assert [h["checkpoint"] for h in history] == [cp2, cp1]  # newest first
    assert history[0] == s2
    assert history[1]["tasks"][0]["result"] == {"steps": 7}  # reply's write, seen later
    assert await c.threads.get_state(tid, checkpoint_id=cp1["checkpoint_id"]) == history[1]
    by_ref = await c.threads.get_state(tid, checkpoint={**cp1, "thread_id": str(uuid.uuid4())})
    assert by_ref == history[1]  # a client's thread_id never overrides the path's
    assert [h["checkpoint"] for h in await c.threads.get_history(tid, limit=1)] == [cp2]
    for before in (cp2["checkpoint_id"], cp2):
        assert [h["checkpoint"] for h in await c.threads.get_history(tid, before=before)] == \
            [cp1]
    assert [h["checkpoint"] for h in await c.threads.get_history(
        tid, metadata={"step": 1})] == [cp2]
    assert len(await c.threads.get_history(tid, checkpoint={"checkpoint_ns": ""})) == 2
    async with httpx.AsyncClient(base_url=url) as h:
        got = (await h.get(f"/threads/{tid}/history", params={"limit": 1})).json()
        assert [s["checkpoint"] for s in got] == [cp2]

    # Fork from the first checkpoint (time travel), by checkpoint object and by id.
    other = str(uuid.uuid4())
    cp3 = (await c.threads.update_state(tid, {"steps": 100}, as_node="think",
                                        checkpoint={**cp1, "thread_id": other}))["checkpoint"]
    assert cp3["thread_id"] == tid
    s3 = await c.threads.get_state(tid)
    assert s3["checkpoint"] == cp3 and s3["parent_checkpoint"] == cp1
    assert s3["values"] == {"messages": [HI_STORED], "steps": 100} and s3["next"] == ["reply"]
    resp = await c.threads.update_state(tid, {"steps": 5}, as_node="think",
                                        checkpoint_id=cp1["checkpoint_id"])
    assert (await c.threads.get_state(tid))["values"]["steps"] == 5
    assert resp["checkpoint"]["checkpoint_id"] != cp3["checkpoint_id"]
    assert len(await c.threads.get_history(tid, limit=100)) == 4
    assert (await c.threads.get(tid))["status"] == "interrupted"
    with pytest.raises(BadRequestError, match="Node nope does not exist"):
        await c.threads.update_state(tid, {"steps": 1}, as_node="nope")
    with pytest.raises(BadRequestError):
        await c.threads.update_state(tid, [{"steps": 1}], as_node="think")

    # Copy: new id, same metadata, same checkpoints; independent of the original.
    copy = await c.threads.copy(tid)
    cid = copy["thread_id"]
    assert cid != tid and copy["metadata"] == {"graph_id": "agent"}
    assert copy["status"] == "idle"
    original, copied = await c.threads.get_state(tid), await c.threads.get_state(cid)
    assert copied["values"] == original["values"] and copied["next"] == original["next"]
    assert copied["checkpoint"] == {**original["checkpoint"], "thread_id": cid}
    assert [h["checkpoint"]["checkpoint_id"] for h in await c.threads.get_history(cid)] == \
        [h["checkpoint"]["checkpoint_id"] for h in await c.threads.get_history(tid)]
    await c.threads.update_state(cid, {"steps": 9}, as_node="reply")
    assert (await c.threads.get_state(tid))["values"]["steps"] == 5

    # Delete drops the checkpoints too: the same id made again starts empty.
    await c.threads.delete(tid)
    await c.threads.create(thread_id=tid, graph_id="agent")
    assert (await c.threads.get_state(tid))["checkpoint"]["checkpoint_id"] is None
    assert await c.threads.get_history(tid) == []
    assert (await c.threads.get_state(cid))["values"]["steps"] == 9


async def _subgraphs_and_supersteps(url: str) -> None:
    c = get_client(url=url)
    tid = (await c.threads.create(graph_id="sub"))["thread_id"]
    await c.threads.update_state(tid, {"topic": "x"}, as_node="plan")
    flat = await c.threads.get_state(tid)
    assert flat["values"] == {"topic": "x"} and flat["next"] == ["sub"]
    [task] = flat["tasks"]
    ns = f"sub:{task['id']}"
    assert task["name"] == "sub" and task["state"] is None
    assert task["checkpoint"] == {"thread_id": tid, "checkpoint_ns": ns}
    deep = await c.threads.get_state(tid, subgraphs=True)
    [task] = deep["tasks"]
    assert task["checkpoint"] is None and task["state"]["values"] == {}
    assert task["state"]["next"] == [] and task["state"]["tasks"] == []
    inner = await c.threads.get_state(tid, checkpoint={"checkpoint_ns": ns})
    assert inner["values"] == {} and inner["checkpoint"]["checkpoint_ns"] == ns

    made = await c.threads.create(graph_id="agent", metadata={"src": "import"}, supersteps=[
        {"updates": [{"values": {"messages": [HI]}, "as_node": "think"}]},
        {"updates": [{"values": {"steps": 2}, "as_node": "reply"}]},
    ])
    assert made["status"] == "idle"
    assert made["values"] == {"messages": [HI_STORED], "steps": 2}
    state = await c.threads.get_state(made["thread_id"])
    assert state["values"] == made["values"] and state["next"] == []
    assert [h["next"] for h in await c.threads.get_history(made["thread_id"])] == \
        [[], ["reply"]]
    paused = await c.threads.create(graph_id="agent", supersteps=[
        {"updates": [{"values": {"steps": 1}, "as_node": "think"}]}])
    assert paused["status"] == "interrupted"  # next == ["reply"]
    assert paused["values"] == {"messages": [], "steps": 1}

    # All or nothing: a refused pre-population leaves no thread behind.
    for bad in ({"metadata": {}}, {"graph_id": "agent"}):
        wanted = str(uuid.uuid4())
        steps = [{"updates": [{"values": {"steps": 1}, "as_node": "nope"}]}]
        with pytest.raises(BadRequestError):
            await c.threads.create(thread_id=wanted, supersteps=steps, **bad)
        with pytest.raises(NotFoundError):
            await c.threads.get(wanted)


def test_state_history_copy_subgraphs_supersteps(server):
    asyncio.run(_state_and_history(server.url))
    asyncio.run(_subgraphs_and_supersteps(server.url))
