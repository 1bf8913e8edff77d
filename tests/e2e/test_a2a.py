"""A2A (issue #10) against a real ``aegra serve``, driven by the a2a-sdk client from PyPI.

The card advertises A2A 1.0 (as the platform's does), so the SDK speaks 1.0
(``SendMessage``...); the same client told the interface is 0.3 speaks 0.3
(``message/send``...), which the platform also answers: both dialects are checked.
The wrong-shaped requests go raw, to see the JSON-RPC error objects themselves.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    InvalidParamsError,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    TaskNotCancelableError,
    TaskNotFoundError,
    TaskState,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Value
from langgraph_sdk import get_client

from tests.e2e.conftest import GRAPHS
from tests.e2e.graphs.chat import REPLY
from tests.e2e.runs_support import module_server, show_logs_on_failure, wait_status

PROJECT = {"graphs": {"agent": f"{GRAPHS / 'echo.py'}:graph",
                      "sleepy": f"{GRAPHS / 'sleepy_chat.py'}:graph",
                      "slow": f"{GRAPHS / 'slow.py'}:graph",
                      "fail": f"{GRAPHS / 'fail.py'}:graph",
                      "hitl": f"{GRAPHS / 'hitl.py'}:graph",
                      "ask_chat": f"{GRAPHS / 'ask_chat.py'}:graph",
                      "chat": f"{GRAPHS / 'chat.py'}:graph"}}


@pytest.fixture(scope="module")
def server(pg_admin_dsn, tmp_path_factory):
    yield from module_server(pg_admin_dsn, tmp_path_factory, project=PROJECT,
                             AEGRA__HTTP__KEEPALIVE_INTERVAL_S="0.5")


@pytest.fixture(autouse=True)
def _logs(request, server):
    yield from show_logs_on_failure(request, server)


async def assistant_id(server, graph: str) -> str:
    found = await get_client(url=server.url).assistants.search(graph_id=graph)
    return str(found[0]["assistant_id"])


async def a2a_client(http: httpx.AsyncClient, server, aid: str, *, streaming: bool,
                     version: str | None = None) -> Any:
    """The SDK's client for an assistant, from its card; ``version`` overrides the
    protocol version the card states (``"0.3"``: the SDK's 0.3 transport)."""
    card = await A2ACardResolver(http, f"{server.url}/a2a/{aid}").get_agent_card()
    if version is not None:
        for interface in card.supported_interfaces:
            interface.protocol_version = version
    return ClientFactory(ClientConfig(streaming=streaming, httpx_client=http)).create(card)


def user_message(text: str, context_id: str | None = None) -> SendMessageRequest:
    message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER,
                      parts=[Part(text=text)])
    if context_id is not None:
        message.context_id = context_id
    return SendMessageRequest(message=message)


async def events(client: Any, request: SendMessageRequest) -> list[StreamResponse]:
    return [event async for event in client.send_message(request)]


def texts(artifact: Any) -> list[str]:
    return [part.text for part in artifact.parts]


async def rpc(server, aid: str, body: Any, *, raw: bytes | None = None,
              accept: str = "application/json") -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(f"{server.url}/a2a/{aid}", headers={"Accept": accept},
                               **({"content": raw} if raw is not None else {"json": body}))


def test_agent_card_at_each_path(server):
    async def scenario():
        aid = await assistant_id(server, "agent")
        async with httpx.AsyncClient(timeout=30) as http:
            card = await A2ACardResolver(http, f"{server.url}/a2a/{aid}").get_agent_card()
            assert card.name == "agent"
            (interface,) = card.supported_interfaces
            assert interface.url == f"{server.url}/a2a/{aid}"
            assert (interface.protocol_binding, interface.protocol_version) == ("JSONRPC", "1.0")
            assert card.capabilities.streaming and not card.capabilities.push_notifications
            assert card.skills[0].id == f"{aid}-main"
            raw = (await http.get(f"{server.url}/a2a/{aid}/.well-known/agent-card.json")).json()
            assert raw["skills"][0]["metadata"]["inputSchema"]["supportsA2A"] is True
            for path in (f"/a2a/{aid}", f"/a2a/{aid}/.well-known/agent.json",
                         f"/.well-known/agent-card.json?assistant_id={aid}"):
                got = await http.get(server.url + path)
                assert got.status_code == 200, path
                assert got.json() == raw, path
            missing = await http.get(f"{server.url}/a2a/{uuid.uuid4()}")
            assert missing.status_code == 400
            assert missing.json()["error"]["code"] == -32602
            no_query = await http.get(f"{server.url}/.well-known/agent-card.json")
            assert no_query.status_code == 400
            assert no_query.json()["error"]["code"] == -32602
            slow = await assistant_id(server, "slow")
            slow_card = (await http.get(f"{server.url}/a2a/{slow}")).json()
            assert slow_card["skills"][0]["metadata"]["inputSchema"]["supportsA2A"] is False

    asyncio.run(scenario())


def test_send_message_gets_the_reply_and_same_context_continues(server):
    async def scenario():
        aid = await assistant_id(server, "agent")
        async with httpx.AsyncClient(timeout=30) as http:
            client = await a2a_client(http, server, aid, streaming=False)
            (first,) = await events(client, user_message("hello"))
            task = first.task
            assert task.status.state == TaskState.TASK_STATE_COMPLETED
            assert texts(task.artifacts[0]) == ["echo: hello"]
            assert [(m.role, m.parts[0].text) for m in task.history] == [
                (Role.ROLE_USER, "hello"), (Role.ROLE_AGENT, "echo: hello")]
            ctx = task.context_id
            assert task.id.startswith(f"{ctx}:")

            (second,) = await events(client, user_message("again", context_id=ctx))
            again = second.task
            assert again.context_id == ctx and again.id != task.id
            assert texts(again.artifacts[0]) == ["echo: again"]
            assert [m.parts[0].text for m in again.history] == [
                "hello", "echo: hello", "again", "echo: again"]

        # The context is the thread: the conversation is its state, one run per task.
        lg = get_client(url=server.url)
        state = await lg.threads.get_state(ctx)
        assert [m["content"] for m in state["values"]["messages"]] == [
            "hello", "echo: hello", "again", "echo: again"]
        runs = await lg.runs.list(ctx)
        assert sorted(f"{ctx}:{r['run_id']}" for r in runs) == sorted([task.id, again.id])

    asyncio.run(scenario())


def outline(got: list[StreamResponse]) -> list[tuple[str, str]]:
    """Each streamed event as (kind, state name or artifact text)."""
    out = []
    for event in got:
        kind = event.WhichOneof("payload")
        if kind == "task":
            out.append((kind, TaskState.Name(event.task.status.state)))
        elif kind == "status_update":
            out.append((kind, TaskState.Name(event.status_update.status.state)))
        else:
            out.append((kind, " ".join(texts(event.artifact_update.artifact))))
    return out


def progress(got: list[StreamResponse]) -> list[str]:
    """The agent's text carried by the ``working`` updates."""
    return [e.status_update.status.message.parts[0].text for e in got
            if e.WhichOneof("payload") == "status_update"
            and e.status_update.status.state == TaskState.TASK_STATE_WORKING
            and e.status_update.status.HasField("message")]


def test_stream_message_ends_completed(server):
    async def scenario():
        aid = await assistant_id(server, "agent")
        async with httpx.AsyncClient(timeout=30) as http:
            client = await a2a_client(http, server, aid, streaming=True)
            got = await events(client, user_message("streamed"))
        assert outline(got) == [
            ("task", "TASK_STATE_SUBMITTED"), ("status_update", "TASK_STATE_WORKING"),
            ("status_update", "TASK_STATE_WORKING"),  # the reply, as the graph made it
            ("artifact_update", "echo: streamed"), ("status_update", "TASK_STATE_COMPLETED")]
        assert progress(got) == ["echo: streamed"]
        submitted, done = got[0].task, got[-1].status_update
        assert submitted.history[0].parts[0].text == "streamed"
        assert submitted.history[0].role == Role.ROLE_USER
        assert got[-2].artifact_update.task_id == done.task_id == submitted.id
        assert done.context_id == submitted.context_id

    asyncio.run(scenario())


def test_stream_carries_the_reply_as_it_grows(server):
    """A model streaming token by token: each ``working`` update has the text so far."""
    async def scenario():
        aid = await assistant_id(server, "chat")
        async with httpx.AsyncClient(timeout=30) as http:
            client = await a2a_client(http, server, aid, streaming=True)
            got = await events(client, user_message("hi"))
        grown = progress(got)
        assert len(grown) > 2, grown
        assert all(REPLY.startswith(text) for text in grown), grown
        assert grown[-1] == REPLY
        assert outline(got)[-2:] == [("artifact_update", REPLY),
                                     ("status_update", "TASK_STATE_COMPLETED")]

    asyncio.run(scenario())


def test_get_task_and_unknown_task(server):
    async def scenario():
        aid = await assistant_id(server, "agent")
        async with httpx.AsyncClient(timeout=30) as http:
            client = await a2a_client(http, server, aid, streaming=False)
            (sent,) = await events(client, user_message("remember me"))
            task = await client.get_task(GetTaskRequest(id=sent.task.id))
            assert (task.id, task.context_id) == (sent.task.id, sent.task.context_id)
            assert task.status.state == TaskState.TASK_STATE_COMPLETED
            assert [m.parts[0].text for m in task.history] == ["remember me",
                                                                "echo: remember me"]
            short = await client.get_task(GetTaskRequest(id=sent.task.id, history_length=1))
            assert [m.parts[0].text for m in short.history] == ["echo: remember me"]
            for unknown in (f"{sent.task.context_id}:{uuid.uuid4()}", "no-such-task",
                            f"{uuid.uuid4()}:{uuid.uuid4()}"):
                with pytest.raises(TaskNotFoundError):
                    await client.get_task(GetTaskRequest(id=unknown))
            # Another assistant's task is not this agent's.
            other = await a2a_client(http, server, await assistant_id(server, "sleepy"),
                                     streaming=False)
            with pytest.raises(TaskNotFoundError):
                await other.get_task(GetTaskRequest(id=sent.task.id))

    asyncio.run(scenario())


def test_cancel_a_working_task(server):
    async def scenario():
        aid = await assistant_id(server, "sleepy")
        async with httpx.AsyncClient(timeout=30) as http:
            streaming = await a2a_client(http, server, aid, streaming=True)
            plain = await a2a_client(http, server, aid, streaming=False)
            stream = streaming.send_message(user_message("sleep 60"))
            submitted = await anext(stream)
            tid = submitted.task.id
            working = await anext(stream)
            assert working.status_update.status.state == TaskState.TASK_STATE_WORKING
            lg = get_client(url=server.url)
            ctx, rid = tid.split(":")
            await wait_status(lg, ctx, rid, {"running"})  # cancel the run itself
            canceled = await plain.cancel_task(CancelTaskRequest(id=tid))
            assert canceled.status.state == TaskState.TASK_STATE_CANCELED
            rest = [event async for event in stream]
            assert [e.status_update.status.state for e in rest] == [
                TaskState.TASK_STATE_CANCELED]
            assert (await plain.get_task(GetTaskRequest(id=tid))).status.state == \
                TaskState.TASK_STATE_CANCELED
            assert (await lg.runs.get(ctx, rid))["status"] == "interrupted"
            with pytest.raises(TaskNotCancelableError):
                await plain.cancel_task(CancelTaskRequest(id=tid))

    asyncio.run(scenario())


def test_graph_without_messages_is_refused(server):
    async def scenario():
        aid = await assistant_id(server, "slow")
        async with httpx.AsyncClient(timeout=30) as http:
            client = await a2a_client(http, server, aid, streaming=False)
            with pytest.raises(InvalidParamsError, match="does not support A2A conversational"):
                await events(client, user_message("hi"))

    asyncio.run(scenario())


def data_message(data: dict[str, Any], task_id: str | None = None,
                 context_id: str | None = None) -> SendMessageRequest:
    value = Value()
    value.struct_value.update(data)
    message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER,
                      parts=[Part(data=value)])
    if task_id is not None:
        message.task_id = task_id
    if context_id is not None:
        message.context_id = context_id
    return SendMessageRequest(message=message)


def reply_to(task: Any, text: str) -> SendMessageRequest:
    """A text message continuing ``task`` (same task and context)."""
    request = user_message(text, task.context_id)
    request.message.task_id = task.id
    return request


def test_an_interrupted_graph_asks_for_input(server):
    """A run that stops at ``interrupt()`` leaves its task input-required, with the
    interrupt as an artifact; a message naming the task resumes it with its data
    part's ``resume`` value, keeping the task id. Once finished, it takes no more."""
    async def scenario():
        aid = await assistant_id(server, "hitl")
        lg = get_client(url=server.url)
        async with httpx.AsyncClient(timeout=30) as http:
            client = await a2a_client(http, server, aid, streaming=False)
            (sent,) = await events(client, data_message({"topic": "launch"}))
            task = sent.task
            assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
            (interrupt,) = task.artifacts
            assert interrupt.name == "Interrupt"
            asked = MessageToDict(interrupt.parts[0].data)
            assert asked["value"] == {"question": "approve launch?"}
            got = await client.get_task(GetTaskRequest(id=task.id))
            assert got.status.state == TaskState.TASK_STATE_INPUT_REQUIRED

            (resumed,) = await events(client, data_message(
                {"resume": "yes"}, task_id=task.id, context_id=task.context_id))
            assert (resumed.task.id, resumed.task.context_id) == (task.id, task.context_id)
            assert resumed.task.status.state == TaskState.TASK_STATE_COMPLETED
            state = await lg.threads.get_state(task.context_id)
            assert state["values"]["answer"] == "yes"  # what interrupt() returned
            assert state["values"]["trail"] == ["draft", "ask", "finish:yes"]
            got = await client.get_task(GetTaskRequest(id=task.id))
            assert got.status.state == TaskState.TASK_STATE_COMPLETED
            with pytest.raises(UnsupportedOperationError, match="terminal task"):
                await events(client, data_message({"resume": "no"}, task_id=task.id))
            with pytest.raises(TaskNotCancelableError):
                await client.cancel_task(CancelTaskRequest(id=task.id))
            # The resuming run's own composite id names no task.
            runs = await lg.runs.list(task.context_id)
            assert len(runs) == 2
            with pytest.raises(TaskNotFoundError):
                await client.get_task(GetTaskRequest(
                    id=f"{task.context_id}:{runs[0]['run_id']}"))
            with pytest.raises(TaskNotFoundError):
                await events(client, data_message(
                    {"resume": "x"}, task_id=f"{task.context_id}:{uuid.uuid4()}"))
            with pytest.raises(InvalidParamsError, match="taskId are required"):
                await events(client, data_message({"resume": "x"}))

    asyncio.run(scenario())


def test_a_text_reply_resumes_over_streaming_in_both_dialects(server):
    """Text parts are the resume value (joined by newlines), not a new message: the
    graph's ``interrupt()`` returns them. Over ``SendStreamingMessage`` and over 0.3's
    ``message/stream`` the continuing task streams under its first id."""
    async def scenario():
        aid = await assistant_id(server, "ask_chat")
        lg = get_client(url=server.url)
        async with httpx.AsyncClient(timeout=30) as http:
            for version in (None, "0.3"):
                client = await a2a_client(http, server, aid, streaming=True, version=version)
                asked = await events(client, user_message("paint it"))
                task = asked[0].task
                assert asked[-1].status_update.status.state == \
                    TaskState.TASK_STATE_INPUT_REQUIRED
                got = await events(client, reply_to(task, "blue"))
                assert {e.task.id or e.status_update.task_id or e.artifact_update.task_id
                        for e in got} == {task.id}
                assert outline(got)[0] == ("task", "TASK_STATE_SUBMITTED")
                assert outline(got)[-2:] == [("artifact_update", "you said: blue"),
                                             ("status_update", "TASK_STATE_COMPLETED")]
                state = await lg.threads.get_state(task.context_id)
                assert [m["content"] for m in state["values"]["messages"]] == [
                    "paint it", "you said: blue"]
                plain = await a2a_client(http, server, aid, streaming=False, version=version)
                done = await plain.get_task(GetTaskRequest(id=task.id))
                assert done.status.state == TaskState.TASK_STATE_COMPLETED

    asyncio.run(scenario())


def test_cancel_a_task_waiting_for_input(server):
    """Cancelling an input-required task ends its wait: the task is canceled, the
    thread no longer interrupted, and the task takes no more messages."""
    async def scenario():
        aid = await assistant_id(server, "ask_chat")
        lg = get_client(url=server.url)
        async with httpx.AsyncClient(timeout=30) as http:
            for version in (None, "0.3"):
                client = await a2a_client(http, server, aid, streaming=False, version=version)
                (sent,) = await events(client, user_message("paint it"))
                task = sent.task
                assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
                canceled = await client.cancel_task(CancelTaskRequest(id=task.id))
                assert canceled.status.state == TaskState.TASK_STATE_CANCELED
                got = await client.get_task(GetTaskRequest(id=task.id))
                assert got.status.state == TaskState.TASK_STATE_CANCELED
                thread = await lg.threads.get(task.context_id)
                assert (thread["status"], thread["interrupts"]) == ("idle", {})
                with pytest.raises(UnsupportedOperationError):
                    await events(client, reply_to(task, "too late"))
                with pytest.raises(TaskNotCancelableError):
                    await client.cancel_task(CancelTaskRequest(id=task.id))
                # the context goes on with a new task
                (again,) = await events(client, user_message("again", task.context_id))
                assert again.task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
                assert again.task.id != task.id

    asyncio.run(scenario())


def test_a_failing_run_is_a_failed_task(server):
    """A data part is top-level input (no ``messages`` needed); the graph raises."""
    async def scenario():
        aid = await assistant_id(server, "fail")
        request = data_message({"text": "x"})
        async with httpx.AsyncClient(timeout=30) as http:
            plain = await a2a_client(http, server, aid, streaming=False)
            (sent,) = await events(plain, request)
            streaming = await a2a_client(http, server, aid, streaming=True)
            got = await events(streaming, request)
        assert sent.task.status.state == TaskState.TASK_STATE_FAILED
        assert sent.task.status.message.parts[0].text == (
            "Error executing assistant: ValueError: boom: ok")
        assert outline(got) == [
            ("task", "TASK_STATE_SUBMITTED"), ("status_update", "TASK_STATE_WORKING"),
            ("status_update", "TASK_STATE_FAILED")]
        assert "boom: ok" in got[-1].status_update.status.message.parts[0].text

    asyncio.run(scenario())


def test_the_0_3_dialect(server):
    """What a2a-sdk 0.3 clients send: slash names, lower-case roles and states, bare
    results with a ``kind``."""
    async def scenario():
        aid = await assistant_id(server, "agent")
        async with httpx.AsyncClient(timeout=30) as http:
            plain = await a2a_client(http, server, aid, streaming=False, version="0.3")
            (sent,) = await events(plain, user_message("old"))
            assert sent.task.status.state == TaskState.TASK_STATE_COMPLETED
            assert texts(sent.task.artifacts[0]) == ["echo: old"]
            task = await plain.get_task(GetTaskRequest(id=sent.task.id))
            assert task.status.state == TaskState.TASK_STATE_COMPLETED
            streaming = await a2a_client(http, server, aid, streaming=True, version="0.3")
            got = await events(streaming, user_message("old stream", sent.task.context_id))
            assert outline(got) == [
                ("task", "TASK_STATE_SUBMITTED"), ("status_update", "TASK_STATE_WORKING"),
                ("status_update", "TASK_STATE_WORKING"),
                ("artifact_update", "echo: old stream"),
                ("status_update", "TASK_STATE_COMPLETED")]
            assert progress(got) == ["echo: old stream"]

        body = {"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {"message": {
            "kind": "message", "messageId": "m1", "role": "user",
            "parts": [{"kind": "text", "text": "raw"}]}}}
        answer = (await rpc(server, aid, body)).json()
        assert answer["id"] == 7
        result = answer["result"]
        assert (result["kind"], result["status"]["state"]) == ("task", "completed")
        assert [m["role"] for m in result["history"]] == ["user", "agent"]
        assert result["artifacts"][0]["parts"] == [{"kind": "text", "text": "echo: raw"}]

    asyncio.run(scenario())


def test_wrong_shaped_requests_get_json_rpc_errors(server):
    async def scenario():
        aid = await assistant_id(server, "agent")
        ok_message = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}]}
        cases: list[tuple[Any, bytes | None, int]] = [
            (None, b"{not json", -32700),
            ([1, 2], None, -32600),
            ({"id": 1, "method": "GetTask", "params": {}}, None, -32600),
            ({"jsonrpc": "2.0", "id": 1}, None, -32600),
            ({"jsonrpc": "2.0", "id": {"a": 1}, "method": "GetTask"}, None, -32600),
            ({"jsonrpc": "2.0", "id": 1, "method": "tasks/resubscribe"}, None, -32601),
            ({"jsonrpc": "2.0", "id": 1, "method": 5}, None, -32601),
            ({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": []}, None, -32602),
            ({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {}}, None, -32602),
            ({"jsonrpc": "2.0", "id": 1, "method": "message/send",
              "params": {"message": {**ok_message, "parts": []}}}, None, -32602),
            ({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
              "params": {"message": {**ok_message, "parts": [{"file": {}}]}}}, None, -32005),
            ({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
              "params": {"message": {**ok_message, "contextId": "nope"}}}, None, -32602),
            ({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
              "params": {"message": ok_message, "configuration": {"historyLength": 11}}},
             None, -32602),
            ({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {}}, None, -32602),
            ({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "a:b"}},
             None, -32001),
            ({"jsonrpc": "2.0", "id": 1, "method": "CancelTask",
              "params": {"id": f"{uuid.uuid4()}:{uuid.uuid4()}"}}, None, -32001),
        ]
        for body, raw, code in cases:
            response = await rpc(server, aid, body, raw=raw)
            assert response.status_code == 200, (body, raw, response.text)
            assert response.json()["error"]["code"] == code, (body, raw, response.json())
        not_uuid = await rpc(server, "agent", {"jsonrpc": "2.0", "id": "x", "method": "GetTask",
                                               "params": {"id": "a:b"}})
        assert not_uuid.json() == {"jsonrpc": "2.0", "id": "x", "error": {
            "code": -32602, "message": "Invalid assistant ID: must be a UUID"}}
        streamed = await rpc(server, aid, {"jsonrpc": "2.0", "id": 2,
                                           "method": "SendStreamingMessage",
                                           "params": {"message": ok_message}})
        assert streamed.status_code == 400  # asked for JSON, not an event stream
        # A bad streaming request is answered inside the stream, as the platform does.
        bad = await rpc(server, aid, {"jsonrpc": "2.0", "id": 3, "method": "message/stream",
                                      "params": {"message": {**ok_message, "role": ""}}},
                        accept="text/event-stream")
        assert bad.status_code == 200
        assert '"code":-32602' in bad.text and '"id":3' in bad.text

    asyncio.run(scenario())


def test_errors_inside_a_stream_reach_the_sdk_typed(server):
    """A request refused after the stream opened is a JSON-RPC error event, which the
    SDK raises as its typed error."""
    async def scenario():
        aid = await assistant_id(server, "agent")
        async with httpx.AsyncClient(timeout=30) as http:
            client = await a2a_client(http, server, aid, streaming=True)
            with pytest.raises(InvalidParamsError, match="contextId must be a UUID"):
                await events(client, user_message("x", context_id="not-a-uuid"))
            with pytest.raises(TaskNotFoundError):
                await client.get_task(GetTaskRequest(id="nope"))

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def a2a_off(pg_admin_dsn, tmp_path_factory):
    yield from module_server(pg_admin_dsn, tmp_path_factory,
                             project={**PROJECT, "http": {"disable_a2a": True}})


def test_disable_a2a_removes_the_endpoints(a2a_off):
    async def scenario():
        aid = await assistant_id(a2a_off, "agent")
        async with httpx.AsyncClient(timeout=30) as http:
            for path in (f"/a2a/{aid}", f"/a2a/{aid}/.well-known/agent-card.json",
                         f"/.well-known/agent-card.json?assistant_id={aid}"):
                assert (await http.get(a2a_off.url + path)).status_code == 404, path
            posted = await http.post(f"{a2a_off.url}/a2a/{aid}", json={
                "jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "a:b"}})
            assert posted.status_code == 404

    asyncio.run(scenario())
