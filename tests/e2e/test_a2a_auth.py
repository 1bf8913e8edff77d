"""A2A under custom auth (tests/e2e/apps/auth_owner.py, the owner pattern), with the
a2a-sdk client: the caller's identity applies to cards, tasks and the runs they make.

Alice's task is hers: bob's get and cancel say "task not found", and his message into
her context is refused, as if the thread did not exist; so is his reply to a task of
hers waiting for input, which hers resumes. The graph runs as alice.
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
    TaskNotFoundError,
    TaskState,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Value

from tests.e2e.auth_support import TOKENS, as_user, auth_server  # noqa: F401  fixtures

pytestmark = pytest.mark.e2e


def http_as(who: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {TOKENS[who]}"})


async def a2a_client(http: httpx.AsyncClient, url: str, aid: str, card: Any = None) -> Any:
    """The SDK's client sending ``http``'s credentials; ``card``: one fetched before."""
    if card is None:
        card = await A2ACardResolver(http, f"{url}/a2a/{aid}").get_agent_card()
    return ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)


def message(part: Part, context_id: str | None = None) -> SendMessageRequest:
    sent = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[part])
    if context_id is not None:
        sent.context_id = context_id
    return SendMessageRequest(message=sent)


async def send(client: Any, request: SendMessageRequest) -> Any:
    (event,) = [e async for e in client.send_message(request)]
    return event.task


def test_tasks_belong_to_their_caller(auth_server, as_user):  # noqa: F811
    async def scenario():
        alice_lg = as_user("alice")
        mine = await alice_lg.assistants.create("agent", name="alice's echo")
        aid = str(mine["assistant_id"])
        async with http_as("alice") as alice_http, http_as("bob") as bob_http:
            card = await A2ACardResolver(alice_http, f"{auth_server.url}/a2a/{aid}"
                                         ).get_agent_card()
            alice = await a2a_client(alice_http, auth_server.url, aid, card)
            task = await send(alice, message(Part(text="secret")))
            assert task.status.state == TaskState.TASK_STATE_COMPLETED
            assert task.artifacts[0].parts[0].text == "echo: secret"
            thread = await alice_lg.threads.get(task.context_id)
            assert thread["metadata"]["owner"] == "alice"  # the run made it as alice

            # bob cannot even read alice's card, nor reach her tasks.
            refused = await bob_http.get(f"{auth_server.url}/a2a/{aid}")
            assert refused.status_code == 400
            assert refused.json()["error"]["code"] == -32602
            bob = await a2a_client(bob_http, auth_server.url, aid, card)  # alice's card
            with pytest.raises(TaskNotFoundError):
                await bob.get_task(GetTaskRequest(id=task.id))
            with pytest.raises(TaskNotFoundError):
                await bob.cancel_task(CancelTaskRequest(id=task.id))
            with pytest.raises(InvalidParamsError):
                await send(bob, message(Part(text="let me in"), task.context_id))
            state = await alice_lg.threads.get_state(task.context_id)
            assert [m["content"] for m in state["values"]["messages"]] == [
                "secret", "echo: secret"]

        async with httpx.AsyncClient(timeout=30) as anonymous:
            refused = await anonymous.post(f"{auth_server.url}/a2a/{aid}", json={
                "jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task.id}})
            assert refused.status_code == 401

    asyncio.run(scenario())


def test_the_graph_runs_as_the_caller(auth_server, as_user):  # noqa: F811
    """A data-only message goes to a graph without ``messages`` as top-level input; the
    graph sees alice, whatever the client claims."""
    async def scenario():
        mine = await as_user("alice").assistants.create("whoami")
        aid = str(mine["assistant_id"])
        async with http_as("alice") as http:
            alice = await a2a_client(http, auth_server.url, aid)
            data = Value()
            data.struct_value.update({"client_user_id": "mallory"})
            task = await send(alice, message(Part(data=data)))
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        (part,) = task.artifacts[0].parts
        values = MessageToDict(part.data)
        assert values["identity"] == "alice"
        assert values["user_id"] == "alice"

    asyncio.run(scenario())


def test_only_the_owner_resumes_or_cancels_a_waiting_task(auth_server, as_user):  # noqa: F811
    async def scenario():
        alice_lg = as_user("alice")
        mine = await alice_lg.assistants.create("hitl")
        aid = str(mine["assistant_id"])
        async with http_as("alice") as alice_http, http_as("bob") as bob_http:
            card = await A2ACardResolver(alice_http, f"{auth_server.url}/a2a/{aid}"
                                         ).get_agent_card()
            alice = await a2a_client(alice_http, auth_server.url, aid, card)
            bob = await a2a_client(bob_http, auth_server.url, aid, card)
            data = Value()
            data.struct_value.update({"topic": "launch"})
            task = await send(alice, message(Part(data=data)))
            assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
            data = Value()
            data.struct_value.update({"resume": "yes"})
            reply = message(Part(data=data), task.context_id)
            reply.message.task_id = task.id
            with pytest.raises(InvalidParamsError):  # alice's agent: not his to see
                await send(bob, reply)
            with pytest.raises(TaskNotFoundError):
                await bob.cancel_task(CancelTaskRequest(id=task.id))
            # Through an agent of his own on the same graph, her task is not found.
            his = await as_user("bob").assistants.create("hitl")
            own = await a2a_client(bob_http, auth_server.url, str(his["assistant_id"]))
            with pytest.raises(TaskNotFoundError):
                await send(own, reply)
            with pytest.raises(TaskNotFoundError):
                await own.cancel_task(CancelTaskRequest(id=task.id))
            assert (await alice_lg.threads.get(task.context_id))["status"] == "interrupted"
            done = await send(alice, reply)
            assert (done.id, done.status.state) == (task.id, TaskState.TASK_STATE_COMPLETED)
            state = await alice_lg.threads.get_state(task.context_id)
            assert state["values"]["answer"] == "yes"
            with pytest.raises(UnsupportedOperationError):
                await send(alice, reply)

    asyncio.run(scenario())
