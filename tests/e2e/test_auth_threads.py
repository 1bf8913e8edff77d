"""Threads under custom auth, through the real SDK: alice owns, bob cannot see, the admin
sees everything (spec/auth.md items 10-11), and out-of-range numbers are a 422.

The server is tests/e2e/apps/auth_owner.py's: every action stamps ``metadata.owner`` and
returns ``{"owner": identity}``; the admin is unfiltered.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from langgraph_sdk.errors import ConflictError, NotFoundError

from tests.e2e.auth_support import as_user, auth_server  # noqa: F401  fixtures

pytestmark = pytest.mark.e2e


async def _refused(call: Any, error: type[Exception] = NotFoundError) -> None:
    with pytest.raises(error):
        await call


def test_owner_can_others_cannot(as_user) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob, admin = as_user("alice"), as_user("bob"), as_user("admin")
        tag = uuid.uuid4().hex
        t = await alice.threads.create(metadata={"graph_id": "agent", "tag": tag})
        tid = t["thread_id"]
        assert t["metadata"] == {"graph_id": "agent", "tag": tag, "owner": "alice"}
        first = await alice.threads.update_state(tid, {"steps": 1}, as_node="think")
        cp = first["checkpoint"]
        before = await alice.threads.get(tid)
        state = await alice.threads.get_state(tid)
        assert state["values"] == {"messages": [], "steps": 1}

        # bob: every action on alice's thread is a 404, as for an unknown id.
        await _refused(bob.threads.get(tid))
        await _refused(bob.threads.update(tid, metadata={"owner": "bob", "x": 1}))
        await _refused(bob.threads.delete(tid))
        await _refused(bob.threads.get_state(tid))
        await _refused(bob.threads.get_state(tid, checkpoint_id=cp["checkpoint_id"]))
        await _refused(bob.threads.get_state(tid, checkpoint=cp))
        await _refused(bob.threads.update_state(tid, {"steps": 99}, as_node="think"))
        await _refused(bob.threads.get_history(tid))
        await _refused(bob.threads.copy(tid), ConflictError)  # copy of an unknown id: 409
        assert await bob.threads.prune([tid]) == {"pruned_count": 0}
        assert await bob.threads.prune([tid], strategy="keep_latest") == {"pruned_count": 0}
        # Create with alice's id: 409, with do_nothing too (never hands her thread over).
        await _refused(bob.threads.create(thread_id=tid), ConflictError)
        await _refused(bob.threads.create(thread_id=tid, if_exists="do_nothing"),
                       ConflictError)
        # ... and nothing changed.
        assert await alice.threads.get(tid) == before
        assert await alice.threads.get_state(tid) == state
        assert len(await alice.threads.get_history(tid)) == 1

        # alice (the owner) can do all of it.
        patched = await alice.threads.update(tid, metadata={"x": 2})
        assert patched["metadata"] == {"graph_id": "agent", "tag": tag, "owner": "alice",
                                       "x": 2}
        await alice.threads.update_state(tid, {"steps": 5}, as_node="reply")
        assert (await alice.threads.get_state(tid))["values"]["steps"] == 5
        assert (await alice.threads.get_state(tid, checkpoint=cp))["values"]["steps"] == 1
        assert len(await alice.threads.get_history(tid)) == 2
        copy = await alice.threads.copy(tid)
        assert copy["metadata"]["owner"] == "alice" and copy["thread_id"] != tid
        assert (await alice.threads.get_state(copy["thread_id"]))["values"]["steps"] == 5
        assert await alice.threads.prune([copy["thread_id"]], strategy="keep_latest") == \
            {"pruned_count": 1}
        same = await alice.threads.create(thread_id=tid, if_exists="do_nothing")
        assert same["thread_id"] == tid and same["metadata"]["x"] == 2

        # The admin is unfiltered: reads, copies and deletes alice's threads.
        assert (await admin.threads.get(tid))["metadata"]["owner"] == "alice"
        assert (await admin.threads.get_state(tid))["values"]["steps"] == 5
        assert len(await admin.threads.get_history(tid)) == 2
        admins_copy = await admin.threads.copy(tid)
        assert admins_copy["metadata"]["owner"] == "alice"
        await admin.threads.delete(admins_copy["thread_id"])
        await _refused(alice.threads.get(admins_copy["thread_id"]))

        # Delete stops the thread's active runs first; bob's delete stops nothing.
        busy = (await alice.threads.create(metadata={"tag": tag}))["thread_id"]
        run = await alice.runs.create(busy, "agent", input={"messages": []},
                                      after_seconds=600)
        await _refused(bob.threads.delete(busy))
        assert (await alice.runs.get(busy, run["run_id"]))["status"] == "pending"
        await alice.threads.delete(busy)
        await _refused(admin.threads.get(busy))

        await alice.threads.delete(tid)
        await _refused(admin.threads.get(tid))
        # The filtered delete took the checkpoints too: the same id made again is empty.
        await alice.threads.create(thread_id=tid, graph_id="agent")
        assert (await alice.threads.get_state(tid))["checkpoint"]["checkpoint_id"] is None
        assert await alice.threads.get_history(tid) == []
        await alice.threads.delete(tid)
        assert await alice.threads.prune([copy["thread_id"]]) == {"pruned_count": 1}
        await _refused(admin.threads.get(copy["thread_id"]))

    asyncio.run(scenario())


def test_search_count_and_prune_see_only_ones_own(as_user) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob, admin = as_user("alice"), as_user("bob"), as_user("admin")
        tag = uuid.uuid4().hex
        mine = [(await alice.threads.create(metadata={"tag": tag, "i": i}))["thread_id"]
                for i in range(2)]
        theirs = (await bob.threads.create(metadata={"tag": tag}))["thread_id"]
        query = {"tag": tag}

        found = await alice.threads.search(metadata=query, limit=100)
        assert {t["thread_id"] for t in found} == set(mine)
        assert [t["thread_id"] for t in await bob.threads.search(metadata=query)] == [theirs]
        assert await bob.threads.search(ids=mine) == []
        assert await bob.threads.search(metadata={"tag": tag, "i": 0}) == []
        # Naming alice as the owner does not widen bob's search (the handler re-stamps it).
        named = await bob.threads.search(metadata={"owner": "alice", "tag": tag})
        assert [t["thread_id"] for t in named] == [theirs]
        assert await alice.threads.count(metadata=query) == 2
        assert await bob.threads.count(metadata=query) == 1
        assert await bob.threads.count(metadata={"owner": "alice", "tag": tag}) == 1
        every = await admin.threads.search(metadata=query, limit=100)
        assert {t["thread_id"] for t in every} == {*mine, theirs}
        assert await admin.threads.count(metadata=query) == 3

        # Bulk prune touches only the caller's own threads.
        assert await bob.threads.prune([*mine, theirs]) == {"pruned_count": 1}
        await _refused(admin.threads.get(theirs))
        assert await alice.threads.count(metadata=query) == 2
        assert await admin.threads.prune(mine) == {"pruned_count": 2}
        assert await admin.threads.count(metadata=query) == 0

    asyncio.run(scenario())


def test_out_of_range_numbers_are_422(as_user) -> None:  # noqa: F811
    async def scenario() -> None:
        alice = as_user("alice")
        http = alice.http.client
        tag = {"tag": uuid.uuid4().hex}
        tid = (await alice.threads.create(metadata={"graph_id": "agent", **tag}))["thread_id"]
        cases: list[tuple[str, str, dict[str, Any], str]] = [
            ("POST", "/threads", {"ttl": 1e308, "metadata": tag}, "ttl"),
            ("POST", "/threads", {"ttl": -1, "metadata": tag}, "ttl"),
            ("POST", "/threads", {"ttl": 0, "metadata": tag}, "ttl"),
            ("POST", "/threads", {"ttl": 2**70, "metadata": tag}, "ttl"),
            ("POST", "/threads", {"ttl": {"ttl": 1e300}, "metadata": tag}, "ttl.ttl"),
            ("PATCH", f"/threads/{tid}", {"ttl": 1e308}, "ttl"),
            ("POST", "/threads/search", {"offset": 2**63}, "offset"),
            ("POST", "/threads/search", {"offset": 2**31}, "offset"),
            ("POST", "/threads/search", {"offset": -1}, "offset"),
            ("POST", "/threads/search", {"limit": -1}, "limit"),
            ("POST", "/threads/search", {"limit": 1e20}, "limit"),
            ("POST", f"/threads/{tid}/history", {"limit": 0}, "limit"),
            ("POST", f"/threads/{tid}/history", {"limit": 1e20}, "limit"),
            ("POST", f"/threads/{tid}/history", {"limit": 2**63}, "limit"),
        ]
        for method, path, body, field in cases:
            response = await http.request(method, path, json=body)
            assert response.status_code == 422, (method, path, body, response.text)
            assert response.json()["field"] == field, (body, response.text)
        for limit in ("1e20", "-1", str(2**63)):
            response = await http.get(f"/threads/{tid}/history", params={"limit": limit})
            assert response.status_code == 422, (limit, response.text)
            assert response.json()["field"] == "limit"
        # In range still works, and nothing above left a thread behind.
        ok = await http.post("/threads/search", json={"offset": 2**31 - 1, "limit": 1000})
        assert ok.status_code == 200 and ok.json() == []
        made = await alice.threads.create(metadata=tag, ttl={"ttl": 60, "strategy": "delete"})
        assert (await alice.threads.get(made["thread_id"], include=["ttl"]))["ttl"][
            "ttl_minutes"] == 60
        assert await alice.threads.count(metadata=tag) == 2

    asyncio.run(scenario())
