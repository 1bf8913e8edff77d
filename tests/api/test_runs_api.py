"""Run handlers in-process over the in-memory services: create (on a thread, stateless,
batch), get, list, cancel (one, many), join, delete; multitask rules; bounds at the
edge; the owner pattern. No worker runs: a run stays pending unless a test claims it."""

from __future__ import annotations

import uuid
from typing import Any

import trio

from tests.api.conftest import SYSTEM_ASSISTANT

RUN = {"assistant_id": "agent", "input": {"x": 1}}


async def new_thread(api: Any, user: str | None = None) -> str:
    status, thread = await api.call("POST", "/threads", user, json={})
    assert status == 200
    return str(thread["thread_id"])


async def test_create_get_list_cancel_delete(make_api: Any) -> None:
    api = await make_api()
    thread_id = await new_thread(api)
    response = await api.client.post(f"/threads/{thread_id}/runs",
                                     json={**RUN, "metadata": {"m": 1}})
    run = await response.get_json()
    assert response.status_code == 200
    assert (run["thread_id"], run["assistant_id"], run["status"]) == (thread_id,
                                                                      SYSTEM_ASSISTANT,
                                                                      "pending")
    assert run["metadata"] == {"m": 1} and run["kwargs"]["input"] == {"x": 1}
    run_id = run["run_id"]
    assert response.headers["Location"] == f"/threads/{thread_id}/runs/{run_id}"
    assert await api.queue.depth() == 1
    assert (await api.call("GET", f"/threads/{thread_id}"))[1]["status"] == "busy"
    assert await api.call("GET", f"/threads/{thread_id}/runs/{run_id}") == (200, run)
    assert (await api.call("GET", f"/threads/{uuid.uuid4()}/runs/{run_id}"))[0] == 404

    # reject refuses while a run is in flight; enqueue waits its turn.
    assert (await api.call("POST", f"/threads/{thread_id}/runs", json={
        **RUN, "multitask_strategy": "reject"}))[0] == 409
    status, second = await api.call("POST", f"/threads/{thread_id}/runs", json={
        **RUN, "multitask_strategy": "enqueue"})
    assert status == 200
    status, listed = await api.call("GET", f"/threads/{thread_id}/runs")
    assert [r["run_id"] for r in listed] == [second["run_id"], run_id]  # newest first
    status, listed = await api.call("GET", f"/threads/{thread_id}/runs", query={
        "limit": "1", "offset": "1", "select": "run_id"})
    assert listed == [{"run_id": run_id}]
    assert (await api.call("GET", f"/threads/{uuid.uuid4()}/runs"))[0] == 404

    # A pending run is cancelled at once; its waiters are released.
    status, as_was = await api.call("POST", f"/threads/{thread_id}/runs/{run_id}/cancel")
    assert (status, as_was["status"]) == (200, "pending")
    assert (await api.call("GET", f"/threads/{thread_id}/runs/{run_id}"))[1]["status"] \
        == "interrupted"
    assert await api.broker.result(run_id) == (True, {"status": "interrupted",
                                                      "values": None, "error": None})
    with trio.fail_after(10):
        assert await api.call("GET", f"/threads/{thread_id}/runs/{run_id}/join") == (200, {})
    assert await api.call("DELETE", f"/threads/{thread_id}/runs/{run_id}") == (204, None)
    assert (await api.call("GET", f"/threads/{thread_id}/runs/{run_id}"))[0] == 404
    assert (await api.call("DELETE", f"/threads/{thread_id}/runs/{run_id}"))[0] == 404
    assert await api.call("POST", "/runs/cancel", query={"action": "rollback"}, json={
        "thread_id": thread_id}) == (204, None)
    assert await api.runs.find(second["run_id"]) is None  # rollback: the run is gone
    assert (await api.call("GET", f"/threads/{thread_id}"))[1]["status"] == "idle"


async def test_a_running_run_is_signalled_through_the_cancel_bus(make_api: Any) -> None:
    api = await make_api()
    thread_id = await new_thread(api)
    status, run = await api.call("POST", f"/threads/{thread_id}/runs", json=RUN)
    heard: list[tuple[str, str]] = []
    await api.cancel_bus.listen(lambda r, a: heard.append((r, a)), lambda: None)
    assert await api.runs.claim(run["run_id"], "worker-elsewhere", 30) is not None
    status, as_was = await api.call(
        "POST", f"/threads/{thread_id}/runs/{run['run_id']}/cancel",
        query={"action": "rollback"})
    assert (status, as_was["status"]) == (200, "running")
    assert heard == [(run["run_id"], "rollback")]  # its worker stops it, wherever it is


async def test_stateless_batch_and_threads_made_for_runs(make_api: Any) -> None:
    api = await make_api()
    status, run = await api.call("POST", "/runs", json=RUN)
    assert status == 200 and run["status"] == "pending"
    assert api.threads.rows[run["thread_id"]]["metadata"]["graph_id"] == "agent"
    made = str(uuid.uuid4())
    assert (await api.call("POST", f"/threads/{made}/runs", json=RUN))[0] == 404
    status, run = await api.call("POST", f"/threads/{made}/runs", json={
        **RUN, "if_not_exists": "create"})
    assert status == 200 and run["thread_id"] == made
    thread_id = await new_thread(api)
    status, runs = await api.call("POST", "/runs/batch", json=[
        RUN, {**RUN, "thread_id": thread_id}])
    assert status == 200 and [r["thread_id"] == thread_id for r in runs] == [False, True]
    assert await api.queue.depth() == 4
    assert (await api.call("POST", "/runs", json={"assistant_id": "nope",
                                                  "input": {}}))[0] == 404


async def test_bad_input_is_4xx_and_creates_nothing(make_api: Any) -> None:
    api = await make_api()
    thread_id = await new_thread(api)
    for query in ({"limit": "-1"}, {"limit": "0"}, {"limit": "1e20"}, {"limit": "1001"},
                  {"offset": str(2**63)}, {"offset": "-1"}, {"offset": "x"}):
        status, answer = await api.call("GET", f"/threads/{thread_id}/runs", query=query)
        assert status == 422 and answer["field"] == next(iter(query)), query
    bodies: list[dict[str, Any]] = [
        {**RUN, "after_seconds": 1e308}, {**RUN, "after_seconds": -1},
        {**RUN, "stream_mode": "nope"}, {**RUN, "multitask_strategy": "x"}, {"input": {}},
        {**RUN, "webhook": "http://127.0.0.1/hook"}]
    for body in bodies:
        assert (await api.call("POST", f"/threads/{thread_id}/runs", json=body))[0] == 422, \
            body
    assert (await api.call("POST", "/runs", json={"assistant_id": "agent"}))[0] == 422
    response = await api.client.post("/runs/batch", data=b"[{not json",
                                     headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert (await api.call("POST", "/runs/batch", json=[RUN, {"input": 1}]))[0] == 422
    assert (await api.call("POST", "/runs/cancel", json={}))[0] == 422
    assert await api.queue.depth() == 0
    assert await api.runs.inflight() == []


async def test_owner_pattern(make_api: Any) -> None:
    api = await make_api(owner_auth=True)
    thread_id = await new_thread(api, "alice")
    status, run = await api.call("POST", f"/threads/{thread_id}/runs", "alice", json=RUN)
    assert status == 200 and run["metadata"] == {"owner": "alice"}
    assert run["user_id"] == "alice"
    run_id = run["run_id"]
    base = f"/threads/{thread_id}/runs"
    for method, path, body in (("GET", f"{base}/{run_id}", None),
                               ("POST", f"{base}/{run_id}/cancel", None),
                               ("GET", f"{base}/{run_id}/join", None),
                               ("DELETE", f"{base}/{run_id}", None),
                               ("POST", base, {**RUN, "multitask_strategy": "enqueue"})):
        assert (await api.call(method, path, "bob", json=body))[0] == 404, (method, path)
    assert await api.call("GET", base, "bob") == (200, [])  # the platform's answer
    assert await api.call("POST", "/runs/cancel", "bob", json={
        "thread_id": thread_id}) == (204, None)  # touches only bob's runs: none
    assert (await api.runs.get(run_id))["status"] == "pending"  # bob changed nothing
    assert await api.runs.inflight() == [run_id]
    # A stateless run's thread is its creator's.
    status, stateless = await api.call("POST", "/runs", "bob", json=RUN)
    assert api.threads.rows[stateless["thread_id"]]["metadata"]["owner"] == "bob"
    assert (await api.call("GET", f"/threads/{stateless['thread_id']}/runs/"
                                  f"{stateless['run_id']}", "alice"))[0] == 404
    status, listed = await api.call("GET", base, "admin")
    assert [r["run_id"] for r in listed] == [run_id]
    status, mine = await api.call("GET", base, "alice")
    assert [r["run_id"] for r in mine] == [run_id]
    status, as_was = await api.call("POST", f"{base}/{run_id}/cancel", "alice")
    assert status == 200 and (await api.runs.get(run_id))["status"] == "interrupted"
