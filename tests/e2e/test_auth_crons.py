"""Crons under custom auth, through the real SDK (spec/auth.md items 10-14).

Alice's crons are hers: bob gets 404 for each of them and nothing of hers changes; he
cannot hang a cron on her thread or her assistant; search and count show each only their
own; the admin sees everything. A cron remembers its owner: every firing runs as alice,
whoever's instance fires it. Bad numbers are 422s naming the field.

The module runs its own server (the shared ``auth_server`` fixture, overridden here) with
6-field schedules allowed, so a per-second cron fires within the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk.errors import APIStatusError

from aegra.domain.crons import OWNER_KEY
from tests.e2e.auth_support import TOKENS, as_user, auth_module_server  # noqa: F401  fixture
from tests.e2e.conftest import ServerProcess
from tests.e2e.runs_support import until

pytestmark = pytest.mark.e2e

HI = {"messages": [{"role": "user", "content": "hi"}]}
NEVER = "0 0 1 1 *"  # once a year: no firing during the test
ALICE_SEES = {"user_id": "alice", "identity": "alice", "attr_identity": "alice",
              "permissions": ["read", "write"], "display_name": "Alice",
              "client_user_id": "alice"}


@pytest.fixture(scope="module")
def auth_server(pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[ServerProcess]:
    """tests/e2e/apps/auth_owner.py (alice, bob, admin) with per-second crons allowed."""
    yield from auth_module_server(pg_admin_dsn, tmp_path_factory,
                                  CRON_ALLOW_SECONDS_SCHEDULE="true",
                                  AEGRA__CRON__TICK_INTERVAL_S="0.2")


def http_as(server: ServerProcess, who: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=30,
                             headers={"Authorization": f"Bearer {TOKENS[who]}"})


async def status_of(call: Awaitable[Any]) -> int:
    try:
        await call
    except APIStatusError as exc:
        return exc.response.status_code
    return 200


async def read(http: httpx.AsyncClient, cron_id: str) -> tuple[int, Any]:
    """GET /runs/crons/{id} (the SDK 0.4.14 has no such call)."""
    response = await http.get(f"/runs/crons/{cron_id}")
    return response.status_code, response.json() if response.status_code == 200 else None


def test_crons_are_their_owners(as_user, auth_server) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob, admin = as_user("alice"), as_user("bob"), as_user("admin")
        tid = (await alice.threads.create())["thread_id"]
        stateless = await alice.crons.create("agent", schedule=NEVER, input=HI,
                                             metadata={"k": "v"})
        # The Run's metadata: what alice's create_run handler stamped, not the cron's.
        assert stateless["user_id"] == "alice" and stateless["metadata"] == {"owner": "alice"}
        kept = await alice.crons.create("agent", schedule=NEVER, input=HI,
                                        on_run_completed="keep")
        await alice.runs.join(kept["thread_id"], kept["run_id"])
        # The thread a stateless firing made is alice's: she reads it, bob cannot.
        assert (await alice.threads.get(kept["thread_id"]))["metadata"]["owner"] == "alice"
        assert await status_of(bob.threads.get(kept["thread_id"])) == 404
        await alice.crons.delete(kept["cron_id"])
        bound = await alice.crons.create_for_thread(tid, "agent", schedule=NEVER, input=HI)
        await alice.runs.join(tid, bound["run_id"])  # its first run, on her thread
        off = await alice.crons.create("agent", schedule=NEVER, input=HI, enabled=False)
        ids = [stateless["cron_id"], bound["cron_id"], off["cron_id"]]

        async with http_as(auth_server, "alice") as mine, http_as(auth_server, "bob") as his:
            before = {}
            for cid in ids:
                status, cron = await read(mine, cid)
                assert status == 200 and cron["user_id"] == "alice"
                assert cron["metadata"]["owner"] == "alice"
                assert OWNER_KEY not in cron["payload"]  # the owner's user stays inside
                before[cid] = cron
            assert before[stateless["cron_id"]]["metadata"] == {"k": "v", "owner": "alice"}

            # Bob: her crons are not there for him, whatever he tries.
            for cid in ids:
                assert (await read(his, cid))[0] == 404
                assert await status_of(bob.crons.update(cid, schedule="5 5 * * *",
                                                        enabled=True)) == 404
                assert await status_of(bob.crons.delete(cid)) == 404
            # ... nor can he hang one on her thread or on her assistant.
            assert await status_of(bob.crons.create_for_thread(
                tid, "agent", schedule=NEVER, input=HI)) == 404
            assistant = await alice.assistants.create("agent", name="alice's")
            assert await status_of(bob.crons.create(
                assistant["assistant_id"], schedule=NEVER, input=HI)) == 404
            # Alice may, and the graph's system assistant serves everyone.
            hers = await alice.crons.create(assistant["assistant_id"], schedule=NEVER,
                                            input=HI, enabled=False)
            ids.append(hers["cron_id"])
            own = await bob.crons.create("agent", schedule=NEVER, input=HI, enabled=False)
            assert own["user_id"] == "bob" and own["metadata"] == {"owner": "bob"}

            for cid in ids[:3]:  # nothing of hers changed
                assert await read(mine, cid) == (200, before[cid])

            # Search and count: each their own; the admin everything.
            assert sorted(c["cron_id"] for c in await alice.crons.search(limit=100)) == (
                sorted(ids))
            assert await alice.crons.count() == 4
            assert [c["cron_id"] for c in await bob.crons.search(limit=100)] == [
                own["cron_id"]]
            assert await bob.crons.count() == 1
            assert await bob.crons.search(thread_id=tid) == []
            assert await bob.crons.count(thread_id=tid) == 0
            assert await alice.crons.count(thread_id=tid) == 1
            everything = {c["cron_id"] for c in await admin.crons.search(limit=100)}
            assert everything == {*ids, own["cron_id"]} and await admin.crons.count() == 5

            # The admin reads and updates hers; she still owns it.
            async with http_as(auth_server, "admin") as root:
                assert (await read(root, off["cron_id"]))[0] == 200
            updated = await admin.crons.update(off["cron_id"], timezone="Europe/Paris")
            assert updated["timezone"] == "Europe/Paris" and updated["user_id"] == "alice"
            assert updated["metadata"] == {"owner": "alice"}
            # Her own metadata update keeps the owner stamp (the handler adds it back).
            tagged = await alice.crons.update(off["cron_id"], metadata={"seen": True})
            assert tagged["metadata"] == {"seen": True, "owner": "alice"}
            # Alice updates and deletes her own.
            moved = await alice.crons.update(off["cron_id"], schedule="5 5 * * *")
            assert moved["schedule"] == "5 5 * * *"
            await alice.crons.delete(stateless["cron_id"])
            assert (await read(mine, stateless["cron_id"]))[0] == 404
            assert await alice.crons.count() == 3 and await bob.crons.count() == 1

    asyncio.run(scenario())


def test_firings_run_as_the_owner(as_user, auth_server) -> None:  # noqa: F811
    async def scenario() -> None:
        alice = as_user("alice")
        tid = (await alice.threads.create())["thread_id"]
        spoofed = {"langgraph_auth_user_id": "admin", "user_id": "admin",
                   "langgraph_auth_user": {"identity": "admin"}}
        first = await alice.crons.create_for_thread(
            tid, "whoami", schedule="* * * * * *", input={}, multitask_strategy="enqueue",
            config={"configurable": spoofed}, context={"langgraph_auth_user_id": "admin"})
        cid = first["cron_id"]
        assert await alice.runs.join(tid, first["run_id"]) == ALICE_SEES

        async def fired() -> list[dict[str, Any]]:
            runs = await alice.runs.list(tid, limit=100)
            return [r for r in runs if r["kwargs"]["cron"]["scheduled_at"] is not None
                    and r["status"] == "success"]

        made = await until(fired, within=30, interval=0.2)  # made by the ticker
        await alice.crons.update(cid, enabled=False)
        run = made[0]
        assert run["user_id"] == "alice"
        assert run["kwargs"]["config"]["configurable"]["langgraph_auth_user_id"] == "alice"
        assert await alice.runs.join(tid, run["run_id"]) == ALICE_SEES
        state = await alice.threads.get_state(tid)
        assert state["values"]["user_id"] == "alice"

    asyncio.run(scenario())


def test_bad_numbers_are_422s(as_user, auth_server) -> None:  # noqa: F811
    async def scenario() -> None:
        async with http_as(auth_server, "alice") as http:
            for body, field in (({"limit": -1}, "limit"), ({"limit": 0}, "limit"),
                                ({"limit": 1001}, "limit"), ({"limit": 1e20}, "limit"),
                                ({"offset": -1}, "offset"), ({"offset": 2**31}, "offset"),
                                ({"offset": 2**63}, "offset")):
                response = await http.post("/runs/crons/search", json=body)
                assert response.status_code == 422, (body, response.text)
                assert field in response.text
            ok = await http.post("/runs/crons/search", json={"offset": 2**31 - 1})
            assert ok.status_code == 200 and ok.json() == []
            bad = await http.post("/runs/crons/search", content=b"{not json")
            assert bad.status_code == 422
            far = await http.post("/runs/crons", json={
                "assistant_id": "agent", "schedule": NEVER, "end_time": "99999-01-01T00:00:00Z"})
            assert far.status_code == 422 and "end_time" in far.text

    asyncio.run(scenario())
