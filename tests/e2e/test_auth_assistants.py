"""Assistants under custom auth, through the real SDK: the owner pattern of
tests/e2e/apps/auth_owner.py (every action stamps and filters on ``metadata.owner``;
the admin is unfiltered). Another user's assistant is not found, whatever the action,
and stays as it was; search and count show one's own; bad numbers are a 422."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.errors import ConflictError, NotFoundError

from tests.e2e.auth_support import TOKENS, as_user, auth_server  # noqa: F401  fixtures

pytestmark = pytest.mark.e2e

AGENT_DEFAULT = "fe096781-5601-53d2-b2f6-0d3403f7e9ca"  # uuid5 default assistant of "agent"


async def _refused(call: Any) -> None:
    with pytest.raises(NotFoundError):
        await call


def test_another_users_assistant_is_not_found_and_unchanged(as_user) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob, admin = as_user("alice"), as_user("bob"), as_user("admin")
        mine = await alice.assistants.create("agent", metadata={"team": "x"}, name="A1")
        assert mine["metadata"] == {"team": "x", "owner": "alice"}
        aid = mine["assistant_id"]

        await _refused(bob.assistants.get(aid))
        await _refused(bob.assistants.update(aid, name="stolen", metadata={"owner": "bob"}))
        await _refused(bob.assistants.delete(aid))
        await _refused(bob.assistants.delete(aid, delete_threads=True))
        await _refused(bob.assistants.get_versions(aid))
        await _refused(bob.assistants.set_latest(aid, 1))
        await _refused(bob.assistants.get_schemas(aid))
        await _refused(bob.assistants.get_graph(aid))
        await _refused(bob.assistants.get_subgraphs(aid))
        # An existing id that is not yours is a conflict, even with do_nothing: returning
        # the row would reveal it.
        for if_exists in ("raise", "do_nothing"):
            with pytest.raises(ConflictError):
                await bob.assistants.create("agent", assistant_id=aid, if_exists=if_exists)

        assert await alice.assistants.get(aid) == mine
        assert await admin.assistants.get(aid) == mine
        assert [v["version"] for v in await alice.assistants.get_versions(aid)] == [1]

        # The owner keeps every right: patch stamps the owner again, set_latest works.
        v2 = await alice.assistants.update(aid, name="A2", metadata={"more": 1})
        assert (v2["version"], v2["metadata"]) == (2, {"team": "x", "owner": "alice",
                                                       "more": 1})
        assert (await alice.assistants.set_latest(aid, 1))["name"] == "A1"
        assert (await alice.assistants.get_schemas(aid))["graph_id"] == "agent"
        assert "nodes" in await alice.assistants.get_graph(aid)
        same = await alice.assistants.create("hitl", assistant_id=aid,
                                             if_exists="do_nothing")
        assert same["assistant_id"] == aid and same["graph_id"] == "agent"

    asyncio.run(scenario())


def test_search_and_count_show_only_ones_own(as_user) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob, admin = as_user("alice"), as_user("bob"), as_user("admin")
        tag = uuid.uuid4().hex
        a1 = await alice.assistants.create("agent", metadata={"tag": tag})
        a2 = await alice.assistants.create("hitl", metadata={"tag": tag})
        b1 = await bob.assistants.create("agent", metadata={"tag": tag})

        def ids(rows: list[dict[str, Any]]) -> set[str]:
            return {r["assistant_id"] for r in rows}

        assert ids(await alice.assistants.search(metadata={"tag": tag})) == {
            a1["assistant_id"], a2["assistant_id"]}
        assert ids(await bob.assistants.search(metadata={"tag": tag})) == {b1["assistant_id"]}
        assert await alice.assistants.count(metadata={"tag": tag}) == 2
        assert await bob.assistants.count(metadata={"tag": tag}) == 1
        assert await bob.assistants.count(metadata={"tag": tag}, graph_id="hitl") == 0
        # A client-sent owner cannot widen the view: the handler overwrites it.
        assert ids(await bob.assistants.search(metadata={"owner": "alice"}, limit=1000)
                   ) & {a1["assistant_id"], a2["assistant_id"]} == set()
        everything = ids(await alice.assistants.search(limit=1000))
        assert b1["assistant_id"] not in everything and a1["assistant_id"] in everything

        # System assistants: the filter applies to them too on this API, as on the
        # platform (they stay usable for runs and crons: spec/auth.md item 12).
        assert AGENT_DEFAULT not in everything
        assert await alice.assistants.search(metadata={"created_by": "system"}) == []
        await _refused(alice.assistants.get("agent"))

        admin_view = ids(await admin.assistants.search(limit=1000))
        assert {a1["assistant_id"], a2["assistant_id"], b1["assistant_id"],
                AGENT_DEFAULT} <= admin_view
        assert await admin.assistants.count(metadata={"tag": tag}) == 3
        assert (await admin.assistants.get("agent"))["assistant_id"] == AGENT_DEFAULT

    asyncio.run(scenario())


def test_delete_cascades_only_to_what_the_caller_may_delete(as_user) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob, admin = as_user("alice"), as_user("bob"), as_user("admin")
        mine = await alice.assistants.create("agent")
        aid = mine["assistant_id"]
        # Threads naming the assistant; the owner key is set explicitly so the test does
        # not depend on how threads stamp it.
        hers = await alice.threads.create(metadata={"assistant_id": aid, "owner": "alice"})
        his = await bob.threads.create(metadata={"assistant_id": aid, "owner": "bob"})
        # A run that stays pending (in flight) until the assistant goes.
        run = await alice.runs.create(hers["thread_id"], aid, input={"messages": []},
                                      after_seconds=3600)
        assert run["status"] == "pending"

        await _refused(bob.assistants.delete(aid, delete_threads=True))
        assert (await admin.runs.get(hers["thread_id"], run["run_id"]))["status"] == "pending"
        assert (await admin.threads.get(hers["thread_id"]))["thread_id"] == hers["thread_id"]

        await alice.assistants.delete(aid, delete_threads=True)
        await _refused(admin.assistants.get(aid))
        await _refused(admin.threads.get(hers["thread_id"]))
        assert (await admin.threads.get(his["thread_id"]))["thread_id"] == his["thread_id"]

    asyncio.run(scenario())


def test_bad_numbers_are_422_naming_the_field(auth_server) -> None:  # noqa: F811
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    with httpx.Client(base_url=auth_server.url, headers=headers) as http:
        aid = http.post("/assistants", json={"graph_id": "agent"}).json()["assistant_id"]
        cases = [
            ("/assistants/search", {"offset": 2**63}, "offset"),
            ("/assistants/search", {"offset": -1}, "offset"),
            ("/assistants/search", {"offset": 2**31}, "offset"),
            ("/assistants/search", {"limit": -1}, "limit"),
            ("/assistants/search", {"limit": 1001}, "limit"),
            ("/assistants/search", {"limit": 1e20}, "limit"),
            (f"/assistants/{aid}/versions", {"offset": 2**63}, "offset"),
            (f"/assistants/{aid}/versions", {"limit": 0}, "limit"),
            (f"/assistants/{aid}/latest", {"version": 2**63}, "version"),
            (f"/assistants/{aid}/latest", {"version": 2**70}, "version"),
            (f"/assistants/{aid}/latest", {"version": -1}, "version"),
            (f"/assistants/{aid}/latest", {"version": 0}, "version"),
            (f"/assistants/{aid}/latest", {"version": 2**31}, "version"),
        ]
        for path, payload, field in cases:
            response = http.post(path, json=payload)
            assert response.status_code == 422, (path, payload, response.text)
            assert response.json()["field"] == field, (path, payload)
        # The largest allowed values are fine: an empty page, an unknown version.
        page = http.post("/assistants/search", json={"offset": 2**31 - 1, "limit": 1000})
        assert page.status_code == 200 and page.json() == []
        missing = http.post(f"/assistants/{aid}/latest", json={"version": 2**31 - 1})
        assert missing.status_code == 404
