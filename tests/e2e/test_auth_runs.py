"""Runs under custom auth, through the real SDK (spec/auth.md items 10-13).

Runs are authorized on the threads resource and filtered by their thread's metadata:
alice's runs are hers; bob gets 404 for each of them (200 ``[]`` when listing), his
bulk cancel leaves them alone, and nothing of hers changes; the admin sees everything.
The graph sees the caller's identity, whatever the client sends. Bad numbers are 422s.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import httpx
import pytest
from langgraph_sdk.errors import APIStatusError

from tests.e2e.auth_support import TOKENS, as_user, auth_server  # noqa: F401  fixtures

pytestmark = pytest.mark.e2e

HI = {"messages": [{"role": "user", "content": "hi"}]}
LATER = 3600  # after_seconds that keeps a run pending for the whole test


async def status_of(call: Awaitable[Any]) -> int:
    """The HTTP status a refused SDK call got (the SDK raises its own error for JSON
    calls and httpx's for streamed bodies)."""
    try:
        await call
    except (APIStatusError, httpx.HTTPStatusError) as exc:
        return exc.response.status_code
    return 200


async def stream_status(events: AsyncIterator[Any]) -> int:
    async def first() -> None:
        async for _ in events:
            break

    return await status_of(first())


def http_as(server: Any, who: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=30,
                             headers={"Authorization": f"Bearer {TOKENS[who]}"})


def test_runs_are_the_thread_owners(as_user, auth_server) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob, admin = as_user("alice"), as_user("bob"), as_user("admin")
        tid = (await alice.threads.create())["thread_id"]
        mine = (await bob.threads.create())["thread_id"]

        # Alice: create, wait, stream and batch on her thread.
        run = await alice.runs.create(tid, "agent", input=HI, metadata={"k": "v"})
        assert run["metadata"] == {"k": "v", "owner": "alice"}
        assert run["user_id"] == "alice"
        await alice.runs.join(tid, run["run_id"])
        waited = await alice.runs.wait(tid, "agent", input=HI)
        assert waited["messages"][-1]["content"] == "echo: hi"
        events = [p.event async for p in alice.runs.stream(tid, "agent", input=HI)]
        assert events[0] == "metadata" and "values" in events
        batch = await alice.runs.create_batch([
            {"thread_id": tid, "assistant_id": "agent", "input": HI,
             "multitask_strategy": "enqueue"}])
        await alice.runs.join(tid, batch[0]["run_id"])
        before = await alice.runs.list(tid, limit=100)
        assert len(before) == 4

        # Bob: alice's thread is not there for him, whatever he tries.
        rid = run["run_id"]
        assert await status_of(bob.runs.create(tid, "agent", input=HI)) == 404
        assert await status_of(bob.runs.wait(tid, "agent", input=HI)) == 404
        assert await stream_status(bob.runs.stream(tid, "agent", input=HI)) == 404
        assert await status_of(bob.runs.create(tid, "agent", input=HI,
                                               if_not_exists="create")) == 404
        assert await status_of(bob.runs.create_batch([
            {"thread_id": tid, "assistant_id": "agent", "input": HI}])) == 404
        assert await status_of(bob.runs.get(tid, rid)) == 404
        assert await status_of(bob.runs.join(tid, rid)) == 404
        assert await stream_status(bob.runs.join_stream(tid, rid)) == 404
        assert await status_of(bob.runs.cancel(tid, rid)) == 404
        assert await status_of(bob.runs.delete(tid, rid)) == 404
        assert await bob.runs.list(tid) == []
        async with http_as(auth_server, "bob") as http:
            # A run id under another (his own) thread's path, by id alone, the thread.
            assert (await http.get(f"/threads/{mine}/runs/{rid}/stream")).status_code == 404
            assert (await http.get(f"/threads/{mine}/runs/{rid}/join")).status_code == 404
            assert (await http.get(f"/runs/{rid}/stream")).status_code == 404
            assert (await http.get(f"/threads/{tid}/stream")).status_code == 404
        async with http_as(auth_server, "alice") as http:
            other = (await alice.threads.create())["thread_id"]
            assert (await http.get(f"/threads/{other}/runs/{rid}/stream")).status_code == 404

        # Nothing of alice's changed; the admin sees it all.
        assert await alice.runs.list(tid, limit=100) == before
        assert (await alice.runs.get(tid, rid))["status"] == "success"
        assert (await admin.runs.get(tid, rid))["run_id"] == rid
        assert len(await admin.runs.list(tid, limit=100)) == 4
        # Bob can run on his own thread; alice cannot see his runs either.
        his = await bob.runs.create(mine, "agent", input=HI)
        assert his["metadata"] == {"owner": "bob"}
        assert await status_of(alice.runs.get(mine, his["run_id"])) == 404
        await bob.runs.join(mine, his["run_id"])
        # The owner deletes.
        await alice.runs.delete(tid, rid)
        assert await status_of(alice.runs.get(tid, rid)) == 404

    asyncio.run(scenario())


def test_bulk_cancel_touches_only_ones_own_runs(as_user) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob, admin = as_user("alice"), as_user("bob"), as_user("admin")
        tid = (await alice.threads.create())["thread_id"]
        waiting = await alice.runs.create(tid, "agent", input=HI, after_seconds=LATER)
        stateless = await alice.runs.create(None, "agent", input=HI, after_seconds=LATER,
                                            on_completion="keep")
        mine = (await bob.threads.create())["thread_id"]
        his = await bob.runs.create(mine, "agent", input=HI, after_seconds=LATER)

        await bob.runs.cancel_many(status="all")
        await bob.runs.cancel_many(run_ids=[waiting["run_id"], stateless["run_id"]])
        await bob.runs.cancel_many(thread_id=tid)
        assert await status_of(bob.runs.cancel(tid, waiting["run_id"])) == 404

        assert (await alice.runs.get(tid, waiting["run_id"]))["status"] == "pending"
        assert (await alice.runs.get(stateless["thread_id"], stateless["run_id"])
                )["status"] == "pending"
        assert (await bob.runs.get(mine, his["run_id"]))["status"] == "interrupted"

        # Alice's own bulk cancel reaches hers; the admin's reaches anyone's.
        await alice.runs.cancel_many(thread_id=tid, status="all")
        assert (await alice.runs.get(tid, waiting["run_id"]))["status"] == "interrupted"
        await admin.runs.cancel_many(run_ids=[stateless["run_id"]])
        assert (await alice.runs.get(stateless["thread_id"], stateless["run_id"])
                )["status"] == "interrupted"

    asyncio.run(scenario())


def test_stateless_runs_belong_to_their_creator(as_user) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob = as_user("alice"), as_user("bob")
        result = await alice.runs.wait(None, "agent", input=HI)
        assert result["messages"][-1]["content"] == "echo: hi"
        events = [p.event async for p in alice.runs.stream(None, "agent", input=HI)]
        assert events[0] == "metadata" and "values" in events

        run = await alice.runs.create(None, "agent", input=HI, on_completion="keep",
                                      metadata={"k": "v"})
        tid, rid = run["thread_id"], run["run_id"]
        assert run["metadata"] == {"k": "v", "owner": "alice"}
        await alice.runs.join(tid, rid)
        thread = await alice.threads.get(tid)
        assert thread["metadata"]["owner"] == "alice"  # the run's stamp made it hers
        assert thread["metadata"]["graph_id"] == "agent"

        assert await status_of(bob.runs.get(tid, rid)) == 404
        assert await status_of(bob.runs.join(tid, rid)) == 404
        assert await bob.runs.list(tid) == []
        assert await status_of(bob.runs.create(tid, "agent", input=HI)) == 404
        assert await status_of(bob.threads.get(tid)) == 404
        assert (await alice.runs.get(tid, rid))["status"] == "success"

    asyncio.run(scenario())


def test_user_assistants_need_read_access_system_ones_do_not(as_user) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob = as_user("alice"), as_user("bob")
        assistant = await alice.assistants.create("agent", name="alice's",
                                                  if_exists="do_nothing")
        aid = assistant["assistant_id"]
        tid = (await alice.threads.create())["thread_id"]
        assert (await alice.runs.wait(tid, aid, input=HI))["messages"][-1]["content"] \
            == "echo: hi"
        mine = (await bob.threads.create())["thread_id"]
        assert await status_of(bob.runs.create(mine, aid, input=HI)) == 404
        assert await status_of(bob.runs.wait(None, aid, input=HI)) == 404
        assert await bob.runs.list(mine) == []  # refused before anything was written
        # The graph's system assistant is anyone's to run.
        assert (await bob.runs.wait(mine, "agent", input=HI))["messages"][-1]["content"] \
            == "echo: hi"

    asyncio.run(scenario())


def test_the_graph_sees_the_callers_identity(as_user) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob = as_user("alice"), as_user("bob")
        tid = (await alice.threads.create())["thread_id"]
        me = await alice.runs.wait(tid, "whoami", input={})
        assert me == {"user_id": "alice", "identity": "alice", "attr_identity": "alice",
                      "permissions": ["read", "write"], "display_name": "Alice",
                      "client_user_id": "alice"}
        # Client-sent identity keys are dropped (config and context alike); user_id is
        # the caller's too.
        spoofed = {"langgraph_auth_user_id": "admin", "user_id": "admin",
                   "langgraph_auth_user": {"identity": "admin"},
                   "langgraph_auth_permissions": ["admin"]}
        again = await alice.runs.wait(tid, "whoami", input={},
                                      config={"configurable": spoofed},
                                      context={"langgraph_auth_user_id": "admin"})
        assert again == me
        run = (await alice.runs.list(tid, limit=1))[0]
        configurable = run["kwargs"]["config"]["configurable"]
        assert configurable["langgraph_auth_user_id"] == "alice"
        assert configurable["langgraph_auth_user"]["identity"] == "alice"
        assert "langgraph_auth_user_id" not in (run["kwargs"]["context"] or {})
        # A stateless run sees its own caller.
        his = await bob.runs.wait(None, "whoami", input={})
        assert (his["user_id"], his["identity"], his["display_name"]) == ("bob", "bob", "bob")
        # The checkpoints took the identity along (metadata serialization coped).
        state = await alice.threads.get_state(tid)
        assert state["values"]["identity"] == "alice"

    asyncio.run(scenario())


def test_bad_numbers_are_422s(as_user, auth_server) -> None:  # noqa: F811
    async def scenario() -> None:
        alice = as_user("alice")
        tid = (await alice.threads.create())["thread_id"]
        async with http_as(auth_server, "alice") as http:
            for query, field in (("limit=-1", "limit"), ("limit=0", "limit"),
                                 ("limit=1001", "limit"), ("limit=1e20", "limit"),
                                 ("limit=abc", "limit"), ("limit=2.5", "limit"),
                                 (f"offset={2**63}", "offset"), ("offset=-1", "offset"),
                                 (f"offset={2**31}", "offset"), ("offset=x", "offset")):
                r = await http.get(f"/threads/{tid}/runs?{query}")
                assert r.status_code == 422, (query, r.text)
                assert r.json()["field"] == field, query
            assert (await http.get(f"/threads/{tid}/runs?limit=1000&offset=0")
                    ).status_code == 200
            run = {"assistant_id": "agent", "input": HI}
            for after in (1e308, -1, 10 * 366 * 24 * 3600):
                r = await http.post(f"/threads/{tid}/runs",
                                    json={**run, "after_seconds": after})
                assert r.status_code == 422, (after, r.text)
                assert r.json()["field"] == "after_seconds"
            r = await http.post("/runs/wait", json={**run, "after_seconds": 1e308})
            assert r.status_code == 422
            for raw in (b"[{bad", b'{"assistant_id": "agent"}', b"[1, 2]", b'["x"]',
                        b'[{"assistant_id": "agent", "after_seconds": 1e308}]'):
                r = await http.post("/runs/batch", content=raw,
                                    headers={"content-type": "application/json"})
                assert r.status_code == 422, (raw, r.text)
            assert await alice.runs.list(tid) == []  # none of it made a run

    asyncio.run(scenario())


def test_unknown_thread_lists_404_foreign_lists_empty(as_user) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob = as_user("alice"), as_user("bob")
        assert await status_of(alice.runs.list(str(uuid.uuid4()))) == 404
        tid = (await alice.threads.create())["thread_id"]
        assert await alice.runs.list(tid) == []
        assert await bob.runs.list(tid) == []

    asyncio.run(scenario())
