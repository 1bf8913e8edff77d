"""Streaming through the SDK: every stream mode, several at once, subgraph namespaces,
validation before the stream starts, and reconnecting with Last-Event-ID.

Event sequences and shapes were compared with the ``langgraph dev`` oracle for the same
calls. Deliberate supersets: every event carries an id (the platform only ids resumable
runs), the stream ends with ``end`` (the platform just closes), and a join without
Last-Event-ID replays the run from its first event (the platform sends only new ones).
"""

from __future__ import annotations

import asyncio

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import UnprocessableEntityError

from tests.e2e.graphs.chat import REPLY
from tests.e2e.runs_support import (
    module_server,
    show_logs_on_failure,
    strip_end,
    wait_status,
)

HI = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def server(pg_admin_dsn, tmp_path_factory):
    yield from module_server(pg_admin_dsn, tmp_path_factory,
                             AEGRA__HTTP__KEEPALIVE_INTERVAL_S="0.5")


@pytest.fixture(autouse=True)
def _logs(request, server):
    yield from show_logs_on_failure(request, server)


async def collect(client, graph, payload, modes, **kw):
    tid = (await client.threads.create())["thread_id"]
    parts = [p async for p in client.runs.stream(tid, graph, input=payload,
                                                 stream_mode=modes, **kw)]
    assert parts[0].event == "metadata"
    if parts[-1].event == "end":
        assert parts[-1].data == {"status": "success"}
    return tid, strip_end(parts)[1:]


def names(parts):
    return [p.event for p in parts]


def test_values_updates_custom_and_several(server):
    async def scenario():
        client = get_client(url=server.url)
        _, parts = await collect(client, "agent", HI, "values")
        assert names(parts) == ["values"] * 3
        assert [len(p.data["messages"]) for p in parts] == [1, 1, 2]
        assert parts[-1].data["steps"] == 2
        _, parts = await collect(client, "agent", HI, "updates")
        assert [list(p.data) for p in parts] == [["think"], ["reply"]]
        assert parts[1].data["reply"]["messages"][0]["content"] == "echo: hi"
        _, parts = await collect(client, "custom", {"count": 3}, ["custom"])
        assert [p.data for p in parts] == [{"progress": i} for i in range(3)]
        # Several at once interleave in execution order: the writer runs inside the node.
        _, parts = await collect(client, "custom", {"count": 2},
                                 ["values", "updates", "custom"])
        assert names(parts) == ["values", "custom", "custom", "updates", "values"]

    asyncio.run(scenario())


def test_messages_tuple_and_messages(server):
    async def scenario():
        client = get_client(url=server.url)
        tid, parts = await collect(client, "chat", HI, ["messages-tuple", "values"])
        tokens = [p for p in parts if p.event == "messages"]
        assert len(tokens) == len(REPLY.split(" ")) * 2 - 1  # words and the spaces
        chunk_ids = {chunk["id"] for chunk, _ in (t.data for t in tokens)}
        assert len(chunk_ids) == 1
        assert "".join(t.data[0]["content"] for t in tokens) == REPLY
        chunk, meta = tokens[0].data
        assert chunk["type"] == "AIMessageChunk"
        assert meta["langgraph_node"] == "chat" and meta["thread_id"] == tid
        final = [p for p in parts if p.event == "values"][-1].data["messages"][-1]
        assert final["id"] in chunk_ids and final["content"] == REPLY

        _, parts = await collect(client, "chat", HI, "messages")
        assert parts[0].event == "messages/metadata"
        (msg_id, meta), = parts[0].data.items()
        assert meta["metadata"]["langgraph_node"] == "chat"
        partial = [p.data for p in parts[1:]]
        assert {p.event for p in parts[1:]} == {"messages/partial"}
        contents = [d[0]["content"] for d in partial]
        assert contents[-1] == REPLY
        # Each partial holds the whole message so far, not a delta.
        assert all(b.startswith(a) for a, b in zip(contents, contents[1:], strict=False))
        assert {d[0]["id"] for d in partial} == {msg_id}
        assert partial[-1][0]["type"] == "ai"

        # events: LangChain's astream_events(v2) stream beside the requested modes.
        _, parts = await collect(client, "chat", HI, ["events", "values"])
        kinds = [p.data["event"] if p.event == "events" else p.event for p in parts]
        assert kinds[:3] == ["on_chain_start", "values", "on_chain_start"]
        assert kinds.count("on_chat_model_stream") == len(tokens)
        assert kinds[-2:] == ["values", "on_chain_end"]
        streamed = [p.data["data"]["chunk"]["content"] for p in parts
                    if p.event == "events" and p.data["event"] == "on_chat_model_stream"]
        assert "".join(streamed) == REPLY

    asyncio.run(scenario())


def test_debug_tasks_checkpoints(server):
    async def scenario():
        client = get_client(url=server.url)
        tid, parts = await collect(client, "agent", HI, ["debug"])
        kinds = [p.data["type"] for p in parts]
        assert kinds == ["checkpoint", "checkpoint", "task", "task_result", "checkpoint",
                         "task", "task_result", "checkpoint"]
        assert [p.data["step"] for p in parts][:3] == [-1, 0, 1]
        assert parts[2].data["payload"]["name"] == "think"
        _, parts = await collect(client, "agent", HI, ["tasks"])
        assert [(p.data["name"], "result" in p.data) for p in parts] == [
            ("think", False), ("think", True), ("reply", False), ("reply", True)]
        assert parts[0].data["triggers"] == ["branch:to:think"]
        assert parts[1].data["result"] == {"steps": 1} and parts[1].data["error"] is None
        tid, parts = await collect(client, "agent", HI, ["checkpoints"])
        assert len(parts) == 4
        assert [p.data["next"] for p in parts] == [["__start__"], ["think"], ["reply"], []]
        last = parts[-1].data
        assert last["config"]["configurable"]["thread_id"] == tid
        assert last["values"]["messages"][-1]["content"] == "echo: hi"
        state = await client.threads.get_state(tid)
        assert last["config"]["configurable"]["checkpoint_id"] == state["checkpoint"][
            "checkpoint_id"]

    asyncio.run(scenario())


def test_subgraph_namespaces_and_bad_mode(server):
    async def scenario():
        client = get_client(url=server.url)
        _, parts = await collect(client, "sub", {"topic": "x"}, ["updates", "values"],
                                 stream_subgraphs=True)
        inner = [p for p in parts if "|" in p.event]
        assert [p.event.split("|")[0] for p in inner] == ["values", "updates", "values"]
        (ns,) = {p.event.split("|", 1)[1] for p in inner}
        assert ns.startswith("sub:") and len(ns) == len("sub:") + 36
        assert inner[1].data == {"inner": {"notes": ["planned", "inner:x"]}}
        assert names(parts)[-2:] == ["updates", "values"]  # root events keep bare names
        _, plain = await collect(client, "sub", {"topic": "x"}, ["updates", "values"])
        assert names(plain) == [p.event for p in parts if "|" not in p.event]

        tid = (await client.threads.create())["thread_id"]
        with pytest.raises(UnprocessableEntityError, match="stream_mode"):
            async for _ in client.runs.stream(tid, "agent", input=HI,
                                              stream_mode=["values", "bogus"]):
                pass
        assert await client.runs.list(tid) == []  # refused before anything was written

    asyncio.run(scenario())


def test_join_stream_reconnect(server):
    async def scenario():
        client = get_client(url=server.url)
        tid, full = await collect(client, "slow", {"delay": 0.01}, ["values", "updates"],
                                  stream_resumable=True)
        rid = (await client.runs.list(tid))[0]["run_id"]
        everything = [p async for p in client.runs.join_stream(tid, rid,
                                                               last_event_id="-1")]
        assert [p.id for p in strip_end(everything)[1:]] == [p.id for p in full]
        ids = [p.id for p in everything]
        assert len(set(ids)) == len(ids)
        for cut in (1, 4, len(everything) - 2):
            rest = [p async for p in client.runs.join_stream(
                tid, rid, last_event_id=everything[cut].id)]
            assert [p.id for p in rest] == ids[cut + 1:]
        only = [p async for p in client.runs.join_stream(tid, rid, stream_mode=["updates"],
                                                         last_event_id="-1")]
        assert names(strip_end(only)) == ["updates", "updates", "updates"]
        # Superset: rejoining after the last event gets the end again, not a silent close.
        after_end = [p async for p in client.runs.join_stream(tid, rid,
                                                              last_event_id=ids[-1])]
        assert [(p.event, p.data) for p in after_end] == [("end", {"status": "success"})]
        # Superset: a joiner of a finished run without Last-Event-ID gets the whole replay.
        replay = [p async for p in client.runs.join_stream(tid, rid)]
        assert [(p.event, p.data) for p in replay] == [(p.event, p.data)
                                                       for p in everything]

        # Live: read part of a background run, drop the connection, resume after the
        # last event seen; together that is every event once, in order.
        run = await client.runs.create(tid, "slow", input={"delay": 0.3},
                                       stream_mode=["values", "updates"])
        seen = []
        async for part in client.runs.join_stream(tid, run["run_id"]):
            seen.append(part)
            if len(seen) == 3:
                break  # a joiner going away never cancels the run
        seen += [p async for p in client.runs.join_stream(tid, run["run_id"],
                                                          last_event_id=seen[-1].id)]
        assert await wait_status(client, tid, run["run_id"], {"success"}) == "success"
        again = [p async for p in client.runs.join_stream(tid, run["run_id"])]
        assert [p.id for p in seen] == [p.id for p in again]
        assert names(again) == ["metadata", "values"] + ["updates", "values"] * 3 + ["end"]

    asyncio.run(scenario())


def test_metadata_comes_first_even_while_the_run_waits_its_turn(server):
    """The stream of a run queued behind another (enqueue) opens with its metadata event
    at once, before any worker starts it; the worker's own copy is not sent twice, and
    a join replays the run from that same event."""
    async def scenario():
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        ahead = await client.runs.create(tid, "slow", input={"delay": 1.0})  # ~3 s
        ahead_status = None
        parts = []
        async for part in client.runs.stream(tid, "slow", input={"delay": 0.05},
                                             stream_mode="values",
                                             multitask_strategy="enqueue"):
            if not parts:
                ahead_status = (await client.runs.get(tid, ahead["run_id"]))["status"]
            parts.append(part)
        meta = [p for p in parts if p.event == "metadata"]
        assert parts[0].event == "metadata" and len(meta) == 1
        assert meta[0].data["attempt"] == 1
        run_id = meta[0].data["run_id"]
        assert ahead_status in ("pending", "running")  # ours had not started yet
        assert [p.event for p in strip_end(parts)][1:] == ["values"] * 4
        joined = [p async for p in client.runs.join_stream(tid, run_id)]
        assert joined[0].event == "metadata" and joined[0].data == meta[0].data
        assert [p.event for p in joined].count("metadata") == 1

    asyncio.run(scenario())
