"""Cron handlers in-process over the in-memory services: create (stateless and on a
thread, with its first run), get, patch, search, count, delete; bounds; the owner
pattern."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.conftest import SYSTEM_ASSISTANT

HOURLY = {"assistant_id": "agent", "schedule": "0 * * * *", "input": {"x": 1}}


async def test_create_runs_once_and_reads_back(make_api: Any) -> None:
    api = await make_api()
    status, made = await api.call("POST", "/runs/crons", json={**HOURLY,
                                                               "metadata": {"k": 1}})
    assert status == 200
    # The first run, with the cron's own fields beside it.
    assert made["status"] == "pending" and made["kwargs"]["input"] == {"x": 1}
    assert (made["assistant_id"], made["schedule"]) == (SYSTEM_ASSISTANT, "0 * * * *")
    assert made["on_run_completed"] == "delete" and made["enabled"] is True
    cron_id, run_id = made["cron_id"], made["run_id"]
    assert await api.queue.depth() == 1  # queued for a worker
    assert (await api.runs.get(run_id))["cron_id"] == cron_id
    status, cron = await api.call("GET", f"/runs/crons/{cron_id}")
    assert status == 200 and cron["metadata"] == {"k": 1} and "run_id" not in cron
    assert "__owner__" not in cron["payload"]

    status, off = await api.call("POST", "/runs/crons", json={**HOURLY, "enabled": False})
    assert status == 200 and "run_id" not in off and off["enabled"] is False
    assert await api.queue.depth() == 1  # a disabled cron makes no run

    status, patched = await api.call("PATCH", f"/runs/crons/{cron_id}", json={
        "schedule": "30 * * * *", "enabled": False})
    assert (status, patched["schedule"], patched["enabled"]) == (200, "30 * * * *", False)
    assert (await api.call("PATCH", f"/runs/crons/{uuid.uuid4()}", json={}))[0] == 404

    status, found = await api.call("POST", "/runs/crons/search", json={})
    assert [c["cron_id"] for c in found] == [off["cron_id"], cron_id]  # newest first
    status, found = await api.call("POST", "/runs/crons/search", json={
        "metadata": {"k": 1}, "select": ["cron_id", "schedule"]})
    assert found == [{"cron_id": cron_id, "schedule": "30 * * * *"}]
    assert await api.call("POST", "/runs/crons/count", json={}) == (200, 2)
    assert await api.call("POST", "/runs/crons/count", json={"enabled": True}) == (200, 0)

    assert await api.call("DELETE", f"/runs/crons/{cron_id}") == (204, None)
    assert (await api.call("GET", f"/runs/crons/{cron_id}"))[0] == 404
    assert (await api.call("DELETE", f"/runs/crons/{cron_id}"))[0] == 404
    assert (await api.runs.get(run_id))["cron_id"] is None  # its run stays


async def test_thread_crons(make_api: Any) -> None:
    api = await make_api()
    status, thread = await api.call("POST", "/threads", json={})
    thread_id = thread["thread_id"]
    status, made = await api.call("POST", f"/threads/{thread_id}/runs/crons", json=HOURLY)
    assert status == 200 and made["thread_id"] == thread_id
    assert made["on_run_completed"] is None
    status, found = await api.call("POST", "/runs/crons/search", json={
        "thread_id": thread_id})
    assert [c["cron_id"] for c in found] == [made["cron_id"]]
    assert (await api.call("POST", f"/threads/{uuid.uuid4()}/runs/crons",
                           json=HOURLY))[0] == 404
    assert (await api.call("DELETE", f"/threads/{thread_id}"))[0] == 204
    assert await api.call("POST", "/runs/crons/count", json={}) == (200, 0)  # cascaded


async def test_bad_input_is_4xx_and_writes_nothing(make_api: Any) -> None:
    api = await make_api()
    for body in ({**HOURLY, "schedule": "every day"}, {**HOURLY, "timezone": "Mars/Base"},
                 {**HOURLY, "end_time": "2001-01-01T00:00:00Z"},
                 {**HOURLY, "stream_mode": "nope"}):
        assert (await api.call("POST", "/runs/crons", json=body))[0] == 422, body
    assert (await api.call("POST", "/runs/crons", json={**HOURLY,
                                                        "assistant_id": "nope"}))[0] == 404
    for search in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"offset": 2**63}):
        assert (await api.call("POST", "/runs/crons/search", json=search))[0] == 422, search
    assert await api.call("POST", "/runs/crons/count", json={}) == (200, 0)
    assert await api.queue.depth() == 0


async def test_owner_pattern(make_api: Any) -> None:
    api = await make_api(owner_auth=True)
    status, mine = await api.call("POST", "/runs/crons", "alice", json=HOURLY)
    assert status == 200 and mine["metadata"] == {"owner": "alice"}
    cron_id = mine["cron_id"]
    # The first run runs as the owner, on a thread the owner can read.
    run = await api.runs.get(mine["run_id"])
    assert run["user_id"] == "alice"
    assert api.threads.rows[run["thread_id"]]["metadata"]["owner"] == "alice"
    await api.call("POST", "/runs/crons", "bob", json=HOURLY)
    for method, path, body in (("GET", f"/runs/crons/{cron_id}", None),
                               ("PATCH", f"/runs/crons/{cron_id}", {"enabled": False}),
                               ("DELETE", f"/runs/crons/{cron_id}", None)):
        assert (await api.call(method, path, "bob", json=body))[0] == 404, (method, path)
    assert (await api.crons.get(cron_id))["enabled"] is True  # bob changed nothing
    status, thread = await api.call("POST", "/threads", "alice", json={})
    assert (await api.call("POST", f"/threads/{thread['thread_id']}/runs/crons", "bob",
                           json=HOURLY))[0] == 404  # not bob's thread
    for user, expected in (("alice", 1), ("bob", 1), ("admin", 2)):
        assert await api.call("POST", "/runs/crons/count", user, json={}) == (200, expected)
        status, found = await api.call("POST", "/runs/crons/search", user, json={})
        assert len(found) == expected, user
    assert (await api.call("DELETE", f"/runs/crons/{cron_id}", "alice"))[0] == 204
    assert await api.call("POST", "/runs/crons/count", "admin", json={}) == (200, 1)


async def test_a_cron_id_that_is_not_a_uuid_is_422_naming_it(make_api: Any) -> None:
    """As the platform: refused before anything is looked up (a UUID not found is 404)."""
    api = await make_api()
    for method, body in (("GET", None), ("PATCH", {"enabled": False}), ("DELETE", None)):
        status, error = await api.call(method, "/runs/crons/not-a-uuid", json=body)
        assert (status, error["field"]) == (422, "cron_id"), method
        assert (await api.call(method, f"/runs/crons/{uuid.uuid4()}", json=body))[0] == 404
