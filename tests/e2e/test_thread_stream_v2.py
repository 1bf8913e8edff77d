"""Agent Protocol v2 thread streaming through the pinned SDK's ``client.threads.stream``,
over SSE and WebSocket: runs started with ``run.start``, their values and messages
events, the final output read from the thread state, an interrupt answered with
``run.respond``; raw HTTP for the ``since`` cursor and for bad input.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from langgraph_sdk import get_client
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.e2e import test_distributed as dist
from tests.e2e.conftest import GRAPHS
from tests.e2e.graphs.chat import REPLY
from tests.e2e.runs_support import ALL_GRAPHS, module_server, show_logs_on_failure, sse_events

HI = {"messages": [{"role": "user", "content": "hi"}]}
TRANSPORTS = ["sse", "websocket"]
IDLE_S = 5.0  # a stream with nothing to follow ends after this (stream.thread_idle_s)


GRAPHS_V2 = {**{g: f"{GRAPHS / f}:graph" for g, f in ALL_GRAPHS.items()},
             "tools": f"{GRAPHS / 'tool_calls.py'}:graph"}


@pytest.fixture(scope="module")
def server(pg_admin_dsn, tmp_path_factory):
    yield from module_server(pg_admin_dsn, tmp_path_factory, project={"graphs": GRAPHS_V2},
                             AEGRA__HTTP__KEEPALIVE_INTERVAL_S="0.5",
                             AEGRA__STREAM__THREAD_IDLE_S=str(IDLE_S))


@pytest.fixture(autouse=True)
def _logs(request, server):
    yield from show_logs_on_failure(request, server)


async def _projections(thread):
    """Values snapshots and message streams from one subscription, until the run ends.

    One ``interleave_projections`` subscription, not ``thread.values`` and
    ``thread.messages`` side by side: the SDK reopens its shared stream for a second
    projection from the cursor it has reached, so a fast run's earlier events would go
    to the first one only (the official server numbers events the same way)."""
    values, streams = [], []
    async for channel, item in thread.interleave_projections(["values", "messages"]):
        (values if channel == "values" else streams).append(item)
    # A stream's text resolves on its message-finish, dispatched by the loop above.
    return values, [(await s.text, s.message_id) for s in streams]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_run_values_messages_and_output(server, transport):
    async def scenario():
        client = get_client(url=server.url)
        async with client.threads.stream(assistant_id="chat", transport=transport) as thread:
            result = await thread.run.start(input=HI)
            assert set(result) == {"run_id"}
            values, messages = await asyncio.wait_for(_projections(thread), 20)
            output = await asyncio.wait_for(thread.output, 20)
        assert [m["content"] for m in output["messages"]] == ["hi", REPLY]
        assert messages == [(REPLY, output["messages"][1]["id"])]
        assert [len(v["messages"]) for v in values] == [1, 2]
        assert values[-1] == output
        run = await client.runs.get(thread.thread_id, result["run_id"])
        assert run["status"] == "success"
    asyncio.run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_interrupt_answered_through_respond(server, transport):
    async def scenario():
        client = get_client(url=server.url)
        async with client.threads.stream(assistant_id="hitl", transport=transport) as thread:
            await thread.run.start(input={"topic": "plan"})
            for _ in range(400):
                if thread.interrupted:
                    break
                await asyncio.sleep(0.05)
            assert thread.interrupted
            [pending] = thread.interrupts
            assert pending["value"] == {"question": "approve plan?"}
            assert pending["namespace"] == []
            answer = await thread.run.respond("yes")
            assert "run_id" in answer
            output = await asyncio.wait_for(thread.output, 20)
        assert output["trail"] == ["draft", "ask", "finish:yes"]
        assert output["answer"] == "yes"
        assert not thread.interrupts
    asyncio.run(scenario())


async def _all(projection):
    return [item async for item in projection]


def test_tool_calls_projection(server):
    async def scenario():
        client = get_client(url=server.url)
        async with client.threads.stream(assistant_id="tools") as thread:
            await thread.run.start(input={"messages": [{"role": "user", "content": "2+3?"}]})
            # The handles' outputs resolve as the iteration feeds their events.
            handles = await asyncio.wait_for(_all(thread.tool_calls), 20)
            calls = [(h.tool_call_id, h.name, h.input, await h.output) for h in handles]
            output = await asyncio.wait_for(thread.output, 20)
        assert calls == [("call_add", "add", {"a": 2, "b": 3}, "5")]
        assert output["messages"][-1]["content"] == "sum is 5"
    asyncio.run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_subgraphs_projection_discovers_the_child_and_sees_it_finish(server, transport):
    # ``sub``: plan, then a compiled subgraph node ``sub`` (inner). The SDK discovers the
    # child from its lifecycle/tasks events and closes it on the parent's task result.
    async def scenario():
        client = get_client(url=server.url)
        async with client.threads.stream(assistant_id="sub", transport=transport) as thread:
            await thread.run.start(input={"topic": "x"})
            handles = await asyncio.wait_for(_all(thread.subgraphs), 20)
            output = await asyncio.wait_for(thread.output, 20)
        return handles, output

    handles, output = asyncio.run(scenario())
    [child] = handles
    assert child.graph_name == "sub" and child.status == "completed" and child.error is None
    assert child.path == (f"sub:{child.trigger_call_id}",)
    assert output["notes"] == ["planned", "inner:x"]


def test_interleave_tasks_checkpoints_and_subgraphs(server):
    async def scenario():
        client = get_client(url=server.url)
        got, handles = [], []  # (channel, item, the handles' statuses as it came)
        async with client.threads.stream(assistant_id="sub") as thread:
            await thread.run.start(input={"topic": "x"})

            async def collect():
                async for channel, item in thread.interleave_projections(
                        ["subgraphs", "tasks", "checkpoints"]):
                    handles.extend([item] if channel == "subgraphs" else [])
                    got.append((channel, item, [h.status for h in handles]))
            await asyncio.wait_for(collect(), 20)
        return got

    got = asyncio.run(scenario())
    [(_, child, status)] = [g for g in got if g[0] == "subgraphs"]
    assert status == ["started"]
    tasks = [(item["name"], "result" in item, st) for ch, item, st in got if ch == "tasks"]
    # Discovered when its events begin (after the parent's task start); finished by the
    # parent's result for its task, not by the end of the run.
    assert tasks == [("plan", False, []), ("plan", True, []), ("sub", False, []),
                     ("sub", True, ["completed"])]
    sub_start, sub_done = [item for ch, item, _ in got
                           if ch == "tasks" and item["name"] == "sub"]
    assert sub_start["id"] == sub_done["id"] == child.trigger_call_id
    assert sub_start["input"] == {"topic": "x", "notes": ["planned"]}
    assert sub_done["result"] == {"topic": "x", "notes": ["planned", "inner:x"]}
    assert sub_done["error"] is None and sub_done["interrupts"] == []
    checkpoints = [item for ch, item, _ in got if ch == "checkpoints"]  # the root's only
    assert [(c["step"], c["source"]) for c in checkpoints] == [
        (-1, "input"), (0, "loop"), (1, "loop"), (2, "loop")]
    assert [c.get("parent_id") for c in checkpoints] == [
        None, *[c["id"] for c in checkpoints[:-1]]]


async def _post_events(http, tid, body, *, until_method=None, limit=None):
    """One SSE connection: the envelopes read until ``until_method`` at the root (or
    ``limit`` of them), then the connection is dropped."""
    out = []
    async with http.stream("POST", f"/threads/{tid}/stream/events", json=body,
                           headers={"Accept": "text/event-stream"}) as resp:
        assert resp.status_code == 200, await resp.aread()
        assert resp.headers["content-type"].startswith("text/event-stream")
        buf = ""
        async for chunk in resp.aiter_text():
            buf += chunk
            while "\n\n" in buf:
                block, buf = buf.split("\n\n", 1)
                for name, data, ident in sse_events(block + "\n\n"):
                    assert name == data["method"] and int(ident) == data["seq"]
                    out.append(data)
                    done = (data["method"] == "lifecycle" and not data["params"]["namespace"]
                            and data["params"]["data"]["event"] == until_method)
                    if done or (limit is not None and len(out) >= limit):
                        return out
    return out


def _command(http, tid, cmd_id, method, params):
    return http.post(f"/threads/{tid}/commands",
                     json={"id": cmd_id, "method": method, "params": params})


def test_since_resumes_without_loss_or_duplicates(server):
    async def scenario():
        tid = str(uuid.uuid4())
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            resp = await _command(http, tid, 1, "run.start",
                                  {"assistant_id": "chat", "input": HI})
            answer = resp.json()
            assert answer["type"] == "success" and answer["id"] == 1
            start = answer["meta"]["applied_through_seq"]
            body = {"channels": ["values", "messages", "lifecycle"], "since": start}
            whole = await _post_events(http, tid, body, until_method="completed")
            assert whole[0]["params"]["data"]["event"] == "started"
            seqs = [e["seq"] for e in whole]
            assert seqs == sorted(set(seqs)) and seqs[0] > start
            # Cut after a few events, then resume from the last seq seen.
            head = await _post_events(http, tid, body, limit=4)
            tail = await _post_events(http, tid, {**body, "since": head[-1]["seq"]},
                                      until_method="completed")
            assert _untimed(head + tail) == _untimed(whole)
            # Channel filters keep the seq numbering: a subset of the same events.
            only = await _post_events(http, tid, {"channels": ["lifecycle"], "since": start},
                                      until_method="completed")
            assert [e["event_id"] for e in only] == [
                e["event_id"] for e in whole if e["method"] == "lifecycle"]
            # A second run on the thread continues the cursor after the first one's.
            second = (await _command(http, tid, 2, "run.start",
                                     {"assistant_id": "chat", "input": HI})).json()
            assert second["meta"]["applied_through_seq"] > seqs[-1]
            more = await _post_events(http, tid, {**body, "since": seqs[-1]},
                                      until_method="completed")
            assert more[0]["seq"] > second["meta"]["applied_through_seq"]
    asyncio.run(scenario())


def _untimed(events):
    """The events without their send times (which differ between connections)."""
    return [{**e, "params": {k: v for k, v in e["params"].items() if k != "timestamp"}}
            for e in events]


def test_raw_interrupt_then_run_start_resumes(server):
    # On the wire: the interrupt is announced at the end of the paused run (input.requested
    # with payload and value, then lifecycle interrupted); a run.start on the paused thread
    # resumes it with its input.
    async def scenario():
        tid = str(uuid.uuid4())
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            first = (await _command(http, tid, 1, "run.start", {
                "assistant_id": "hitl", "input": {"topic": "t"}})).json()
            body = {"channels": ["lifecycle", "input"],
                    "since": first["meta"]["applied_through_seq"]}
            paused = await _post_events(http, tid, body, until_method="interrupted")
            resumed = (await _command(http, tid, 2, "run.start", {
                "assistant_id": "hitl", "input": "ok"})).json()
            done = await _post_events(http, tid, {**body, "since": paused[-1]["seq"]},
                                      until_method="completed")
            state = (await http.get(f"/threads/{tid}/state")).json()
        return paused, resumed, done, state

    paused, resumed, done, state = asyncio.run(scenario())
    assert [(e["method"], e["params"]["data"].get("event")) for e in paused] == [
        ("lifecycle", "started"), ("input.requested", None), ("lifecycle", "interrupted")]
    request = paused[1]["params"]["data"]
    assert request["payload"] == request["value"] == {"question": "approve t?"}
    assert resumed["type"] == "success"
    assert [e["params"]["data"]["event"] for e in done] == ["started", "completed"]
    assert state["values"]["trail"] == ["draft", "ask", "finish:ok"]


def test_bad_input_names_the_field(server):
    async def scenario():
        tid = str(uuid.uuid4())
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            resp = await _command(http, tid, 7, "run.teleport", {})
            assert resp.status_code == 200
            assert resp.json() == {"type": "error", "id": 7, "error": "unknown_command",
                                   "message": "unknown command 'run.teleport'"}
            resp = await http.post(f"/threads/{tid}/commands", json={"method": "run.start"})
            assert resp.status_code == 400 and resp.json()["field"] == "id"
            resp = await _command(http, tid, 8, "run.start", {"input": HI})
            assert resp.json()["error"] == "invalid_argument"
            assert "params.assistant_id" in resp.json()["message"]
            resp = await _command(http, tid, 9, "run.start",
                                  {"assistant_id": "chat", "config": {"tags": 3}})
            assert "params.config.tags" in resp.json()["message"]
            resp = await _command(http, tid, 10, "input.respond", {"response": 1})
            assert "params.interrupt_id" in resp.json()["message"]
            resp = await _command(http, tid, 11, "input.respond",
                                  {"interrupt_id": "nope", "response": 1})
            assert resp.json()["error"] == "no_such_interrupt"
            for body, field in [({"channels": ["values", "telepathy"]}, "channels"),
                                ({"channels": []}, "channels"),
                                ({"channels": ["values"], "namespaces": "x"}, "namespaces"),
                                ({"channels": ["values"], "since": -1}, "since")]:
                resp = await http.post(f"/threads/{tid}/stream/events", json=body)
                assert resp.status_code == 422, body
                assert resp.json()["field"] == field, resp.json()
        ws_url = server.url.replace("http", "ws", 1) + f"/threads/{tid}/stream/events"
        async with ws_connect(ws_url) as ws:
            await ws.send(json.dumps({"id": 1, "method": "subscription.subscribe",
                                      "params": {"channels": ["nope"]}}))
            frame = json.loads(await ws.recv())
            assert frame["error"] == "invalid_argument" and frame["field"] == "params.channels"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 4422
    asyncio.run(scenario())


def test_stream_on_one_instance_sees_a_run_executing_on_the_other(
        start_server, database_url, private_redis, tmp_path):
    # Two instances share PostgreSQL and Redis; the run starts on B (only B is up when it
    # is claimed), then A starts and streams it: events come from Redis, not A's memory.
    env, _ = dist.setup(tmp_path, database_url, private_redis.url)
    b = start_server(env)
    tid = str(uuid.uuid4())
    answer = httpx.post(f"{b.url}/threads/{tid}/commands", json={
        "id": 1, "method": "run.start",
        "params": {"assistant_id": "steps", "input": {"delay": 0.5}}}).json()
    run_id = answer["result"]["run_id"]
    assert dist.executor(database_url, run_id, [b]) is b
    a = start_server(env)

    async def scenario():
        client = get_client(url=a.url)
        async with client.threads.stream(tid, assistant_id="steps",
                                         transport="websocket") as thread:
            events = [e async for e in thread.subscribe(["values", "lifecycle"])]
            output = await asyncio.wait_for(thread.output, 20)
        async with httpx.AsyncClient(base_url=a.url, timeout=30) as http:
            since = answer["meta"]["applied_through_seq"]
            raw = await _post_events(http, tid, {"channels": ["values", "lifecycle"],
                                                 "since": since}, until_method="completed")
        return events, output, raw

    events, output, raw = asyncio.run(scenario())
    lifecycle = [e["params"]["data"]["event"] for e in events if e["method"] == "lifecycle"]
    assert lifecycle == ["started", "completed"]
    values = [e["params"]["data"] for e in events if e["method"] == "values"]
    assert values[-1]["done"] == [0, 1, 2, 3, 4] == output["done"]
    assert [e["event_id"] for e in raw] == [e["event_id"] for e in events]
    assert f'"run_id": "{run_id}"' in b.logs() and "run.finished" not in a.logs()


def test_idle_streams_end_cleanly(server):
    # Nothing to follow on a thread nobody created: SSE ends, the WebSocket closes 1000
    # (the SDK's clean end), both after stream.thread_idle_s (the two side by side).
    tid = str(uuid.uuid4())

    async def sse():
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            return await _post_events(http, tid, {"channels": ["lifecycle"]})

    async def ws():
        url = server.url.replace("http", "ws", 1) + f"/threads/{tid}/stream/events"
        async with ws_connect(url) as sock:
            await sock.send(json.dumps({"id": 3, "method": "subscription.subscribe",
                                        "params": {"channels": ["lifecycle"]}}))
            first = json.loads(await sock.recv())
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(sock.recv(), IDLE_S * 4)
            return first, closed.value.rcvd.code

    async def scenario():
        return await asyncio.gather(sse(), ws())

    events, (first, code) = asyncio.run(scenario())
    assert events == []
    assert first == {"type": "success", "id": 3,
                     "result": {"subscription_id": "3", "replayed_events": 0}}
    assert code == 1000
