"""Every runs method through the official SDK against one ``aegra serve``.

Each SDK scenario is an asyncio coroutine run with ``asyncio.run`` from a sync test (the
suite runs under pytest-trio). Expected codes, statuses and shapes were checked against
the ``langgraph dev`` oracle with the same calls; deliberate supersets are noted inline.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from tests.e2e.runs_support import module_server, show_logs_on_failure, wait_status

HI = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def server(pg_admin_dsn, tmp_path_factory):
    yield from module_server(pg_admin_dsn, tmp_path_factory,
                             AEGRA__HTTP__KEEPALIVE_INTERVAL_S="0.5")


@pytest.fixture(autouse=True)
def _logs(request, server):
    yield from show_logs_on_failure(request, server)


def test_create_get_list_join_delete(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        seen = []
        run = await client.runs.create(tid, "agent", input=HI, metadata={"source": "e2e"},
                                       on_run_created=seen.append)
        rid = run["run_id"]
        assert run["status"] == "pending" and run["thread_id"] == tid
        assert run["metadata"]["source"] == "e2e"
        assert seen == [{"run_id": rid, "thread_id": tid}]
        assert (await client.threads.get(tid))["status"] == "busy"
        joined = await client.runs.join(tid, rid)
        assert joined["messages"][-1]["content"] == "echo: hi"
        got = await client.runs.get(tid, rid)
        assert got["status"] == "success" and got["metadata"]["source"] == "e2e"
        assert got["assistant_id"] and got["multitask_strategy"] == "enqueue"

        rids = [rid]
        for _ in range(2):
            more = await client.runs.create(tid, "agent", input=HI)
            await client.runs.join(tid, more["run_id"])
            rids.append(more["run_id"])
        failed = await client.runs.create(tid, "fail", input={"text": "x"})
        await client.runs.join(tid, failed["run_id"])
        rids.append(failed["run_id"])
        listed = await client.runs.list(tid)
        assert [r["run_id"] for r in listed] == rids[::-1]  # newest first
        page1 = await client.runs.list(tid, limit=2)
        page2 = await client.runs.list(tid, limit=2, offset=2)
        assert [r["run_id"] for r in page1 + page2] == rids[::-1]
        assert [r["run_id"] for r in await client.runs.list(tid, status="error")] == rids[3:]
        assert len(await client.runs.list(tid, status="success")) == 3
        assert await client.runs.list(tid, status="pending") == []

        await client.runs.delete(tid, rid)
        with pytest.raises(NotFoundError):
            await client.runs.get(tid, rid)
        with pytest.raises(NotFoundError):
            await client.runs.delete(tid, rid)
        with pytest.raises(NotFoundError):
            await client.runs.get(tid, str(uuid.uuid4()))

        # Deleting an in-flight run cancels it first (the platform deletes unconditionally).
        slow = await client.runs.create(tid, "slow", input={"delay": 5})
        await wait_status(client, tid, slow["run_id"], {"running"})
        await client.runs.delete(tid, slow["run_id"])
        with pytest.raises(NotFoundError):
            await client.runs.get(tid, slow["run_id"])

    asyncio.run(scenario())


def test_batch_and_stateless_runs(server):
    async def scenario():
        client = get_client(url=server.url)
        batch = await client.runs.create_batch([
            {"assistant_id": "agent", "input": HI, "metadata": {"i": 0}},
            {"assistant_id": "agent", "input": HI, "metadata": {"i": 1},
             "on_completion": "keep"},
        ])
        assert [r["metadata"]["i"] for r in batch] == [0, 1]
        assert batch[0]["thread_id"] != batch[1]["thread_id"]
        for run in batch:
            result = await client.runs.join(run["thread_id"], run["run_id"])
            assert result["messages"][-1]["content"] == "echo: hi"
        await _thread_gone(client, batch[0]["thread_id"])
        kept = await client.threads.get(batch[1]["thread_id"])
        assert kept["values"]["messages"][-1]["content"] == "echo: hi"

        # Stateless wait and stream: the ephemeral thread goes unless on_completion=keep.
        created = []
        result = await client.runs.wait(None, "agent", input=HI, on_run_created=created.append)
        assert result["messages"][-1]["content"] == "echo: hi"
        await _thread_gone(client, created[-1]["thread_id"])
        await client.runs.wait(None, "agent", input=HI, on_completion="keep",
                               on_run_created=created.append)
        assert (await client.threads.get(created[-1]["thread_id"]))["status"] == "idle"
        parts = [p async for p in client.runs.stream(None, "agent", input=HI,
                                                      on_run_created=created.append)]
        assert [p.event for p in parts][0] == "metadata"
        assert parts[-2].data["messages"][-1]["content"] == "echo: hi"
        await _thread_gone(client, created[-1]["thread_id"])
        parts = [p async for p in client.runs.stream(None, "agent", input=HI,
                                                      on_completion="keep",
                                                      on_run_created=created.append)]
        assert (await client.threads.get(created[-1]["thread_id"]))["status"] == "idle"
        run = await client.runs.create(None, "agent", input=HI)
        await client.runs.join(run["thread_id"], run["run_id"])
        await _thread_gone(client, run["thread_id"])

    asyncio.run(scenario())


async def _thread_gone(client, tid):
    for _ in range(100):
        try:
            await client.threads.get(tid)
        except NotFoundError:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"stateless thread {tid} was not deleted")


def test_headers_on_create_stream_wait(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        tid = http.post("/threads", json={}).json()["thread_id"]
        body = {"assistant_id": "agent", "input": HI}
        for suffix, location in (("", None), ("/wait", "/join"), ("/stream", "/stream")):
            r = http.post(f"/threads/{tid}/runs{suffix}", json=body)
            assert r.status_code == 200, r.text
            rid = r.headers["content-location"].rsplit("/", 1)[-1]
            assert r.headers["content-location"] == f"/threads/{tid}/runs/{rid}"
            if location:
                assert r.headers["location"] == f"/threads/{tid}/runs/{rid}{location}"
            if suffix == "/stream":
                assert r.headers["content-type"].startswith("text/event-stream")
            http.get(f"/threads/{tid}/runs/{rid}/join")
        r = http.post("/runs/wait", json=body)
        assert r.headers["location"].endswith("/join") and r.json()["messages"]
        r = http.post(f"/threads/{tid}/runs/stream",
                      json={**body, "stream_mode": ["values", "nope"]})
        assert r.status_code == 422 and "stream_mode" in r.json()["detail"]
        latest = http.get(f"/threads/{tid}/runs").json()[0]
        assert latest["status"] == "success"
        # The reference product's Run fields ride along with the platform's.
        assert latest["output"]["messages"][-1]["content"] == "echo: hi"
        assert latest["input"] == HI and latest["error_message"] is None

        # A batch is validated whole before any run is created.
        threads = http.post("/threads/count", json={}).json()
        r = http.post("/runs/batch", json=[body, {"assistant_id": "agent"}])
        assert r.status_code == 422
        assert http.post("/threads/count", json={}).json() == threads

        # Cancel answers 200 with the run; the reference product's action "cancel" is an
        # interrupt, as any unknown action is on the platform.
        rid = http.post(f"/threads/{tid}/runs", json={
            "assistant_id": "slow", "input": {"delay": 30}}).json()["run_id"]
        r = http.post(f"/threads/{tid}/runs/{rid}/cancel", params={"action": "cancel"})
        assert r.status_code == 200 and r.json()["run_id"] == rid
        r = http.post(f"/threads/{tid}/runs/{rid}/cancel", params={"wait": 1})
        assert r.status_code == 200 and r.json()["status"] == "interrupted"


def test_human_in_the_loop(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        parts = [p async for p in client.runs.stream(tid, "hitl", input={"topic": "x"})]
        values = [p.data for p in parts if p.event == "values"]
        (pending,) = values[-1]["__interrupt__"]
        assert pending["value"] == {"question": "approve x?"} and pending["id"]
        (run,) = await client.runs.list(tid)
        assert run["status"] == "success"  # the platform's rule: the thread is paused
        thread = await client.threads.get(tid)
        assert thread["status"] == "interrupted"
        ((task_id, interrupts),) = thread["interrupts"].items()
        assert interrupts == [{"id": pending["id"], "value": pending["value"]}]
        state = await client.threads.get_state(tid)
        assert state["next"] == ["ask"]
        assert state["tasks"][0]["id"] == task_id and state["tasks"][0]["name"] == "ask"
        assert state["tasks"][0]["interrupts"][0]["value"] == pending["value"]
        assert state["interrupts"][0]["id"] == pending["id"]

        result = await client.runs.wait(tid, "hitl", command={"resume": "yes"})
        assert result["trail"] == ["draft", "ask", "finish:yes"] and result["answer"] == "yes"
        thread = await client.threads.get(tid)
        assert thread["status"] == "idle" and thread["interrupts"] == {}
        assert thread["values"]["trail"] == result["trail"]

        # /wait on a run that pauses returns the values with the pending interrupt.
        tid = (await client.threads.create())["thread_id"]
        paused = await client.runs.wait(tid, "hitl", input={"topic": "y"})
        assert paused["__interrupt__"][0]["value"] == {"question": "approve y?"}

        # Static breakpoints leave the thread interrupted with no interrupt payload; the
        # state can be edited before resuming with no input.
        for where in ({"interrupt_before": ["ask"]}, {"interrupt_after": ["draft"]}):
            tid = (await client.threads.create())["thread_id"]
            await client.runs.wait(tid, "hitl", input={"topic": "z"}, **where)
            assert (await client.runs.list(tid))[0]["status"] == "success"
            thread = await client.threads.get(tid)
            assert thread["status"] == "interrupted" and thread["interrupts"] == {}
            assert (await client.threads.get_state(tid))["next"] == ["ask"]
            await client.threads.update_state(tid, {"answer": "edited"})
            result = await client.runs.wait(tid, "hitl")
            assert result["trail"] == ["draft", "ask", "finish:edited"]
            assert (await client.threads.get(tid))["status"] == "idle"

    asyncio.run(scenario())


# -- run options: after_seconds, if_not_exists, forks, command goto/update, durability,
#    enqueue order. Expected results follow LangGraph's own semantics for the same inputs
#    (checked in-process with an in-memory checkpointer for goto and durability).

def test_after_seconds_holds_the_run_pending_until_then(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        started = time.monotonic()
        run = await client.runs.create(tid, "slow", input={"delay": 0.01},
                                       after_seconds=1.5, metadata={"k": "v"})
        assert run["status"] == "pending" and run["metadata"] == {"k": "v"}
        await asyncio.sleep(0.5)
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "pending"
        await client.runs.join(tid, run["run_id"])
        took = time.monotonic() - started  # a lower bound: load can only make it later
        done = await client.runs.get(tid, run["run_id"])
        assert done["status"] == "success" and took >= 1.4
        assert done["metadata"] == {"k": "v"}

    asyncio.run(scenario())


def test_if_not_exists_create_makes_the_thread(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = str(uuid.uuid4())
        # runs.wait reads the body as a stream: this SDK raises httpx's error for it.
        with pytest.raises((NotFoundError, httpx.HTTPStatusError)) as refused:
            await client.runs.wait(tid, "agent", input=HI)
        assert refused.value.response.status_code == 404
        result = await client.runs.wait(tid, "agent", input=HI, if_not_exists="create")
        assert result["messages"][-1]["content"] == "echo: hi"
        thread = await client.threads.get(tid)
        assert thread["status"] == "idle"
        assert thread["metadata"]["graph_id"] == "agent"

    asyncio.run(scenario())


def test_a_run_from_an_earlier_checkpoint_forks_the_thread(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        await client.runs.wait(tid, "agent", input=HI)
        after_first = (await client.threads.get_state(tid))["checkpoint"]["checkpoint_id"]
        await client.runs.wait(tid, "agent", input=HI)
        assert len((await client.threads.get_state(tid))["values"]["messages"]) == 4
        forked = await client.runs.wait(
            tid, "agent", input={"messages": [{"role": "user", "content": "fork"}]},
            checkpoint_id=after_first)
        # The first run's two messages, then the fork's: the second run is not in it.
        assert [m["content"] for m in forked["messages"]] == [
            "hi", "echo: hi", "fork", "echo: fork"]
        history = await client.threads.get_history(tid, limit=100)
        # A branch: the second run and the fork both continue from the first run's end.
        children = [h for h in history if h["parent_checkpoint"] and
                    h["parent_checkpoint"]["checkpoint_id"] == after_first]
        assert len(children) == 2

    asyncio.run(scenario())


def test_command_update_and_goto(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        first = await client.runs.wait(tid, "slow", input={"delay": 0.01, "tag": "a"})
        assert first["trail"] == ["one:a", "two:a", "three:a"]
        again = await client.runs.wait(tid, "slow",
                                       command={"update": {"tag": "x"}, "goto": "three"})
        assert again["trail"] == ["one:a", "two:a", "three:a", "three:x"]
        assert again["tag"] == "x"

    asyncio.run(scenario())


def test_durability_modes_all_finish_and_exit_saves_only_the_end(server):
    async def scenario():
        client = get_client(url=server.url)
        counts = {}
        for mode in ("sync", "async", "exit"):
            tid = (await client.threads.create())["thread_id"]
            result = await client.runs.wait(tid, "slow", input={"delay": 0.01, "tag": mode},
                                            durability=mode)
            assert result["trail"] == [f"one:{mode}", f"two:{mode}", f"three:{mode}"]
            state = await client.threads.get_state(tid)
            assert state["values"]["trail"] == result["trail"] and state["next"] == []
            counts[mode] = len(await client.threads.get_history(tid, limit=50))
        # One checkpoint per superstep when saving as it goes; only the last with "exit".
        assert counts["sync"] == counts["async"] == 5
        assert counts["exit"] == 1

    asyncio.run(scenario())


def test_enqueued_runs_run_in_order_one_at_a_time(server):
    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        runs = [await client.runs.create(tid, "slow", input={"delay": 0.05, "tag": str(i)},
                                         multitask_strategy="enqueue") for i in range(3)]
        for run in runs:
            await client.runs.join(tid, run["run_id"])
        state = await client.threads.get_state(tid)
        assert state["values"]["trail"] == [f"{n}:{i}" for i in range(3)
                                            for n in ("one", "two", "three")]
        statuses = [(await client.runs.get(tid, r["run_id"]))["status"] for r in runs]
        assert statuses == ["success"] * 3

    asyncio.run(scenario())
