"""``/mcp`` through the official ``mcp`` client (Streamable HTTP + ``ClientSession``)
against real ``aegra serve`` processes: the tools are the caller's assistants, a call
runs one and answers its output, bad arguments and unknown tools are errors naming what
is wrong, malformed JSON-RPC gets JSON-RPC errors, and under custom auth a user sees and
runs only what they may.

Each scenario is an asyncio coroutine run with ``asyncio.run`` from a sync test (the
suite runs under pytest-trio), like the SDK tests.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import mcp.types as types
import pytest
from langgraph_sdk import get_client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from aegra.domain.agent_tools import tool_name, tool_schema
from tests.e2e.auth_support import AUTH_PATH, TOKENS, as_user  # noqa: F401  fixture
from tests.e2e.conftest import GRAPHS, ServerProcess
from tests.e2e.runs_support import ALL_GRAPHS, module_server, show_logs_on_failure

pytestmark = pytest.mark.e2e

ACCEPT = {"Accept": "application/json, text/event-stream"}
# The suite's graphs (typing.TypedDict states: no input schema on Python 3.11, so not
# tools) and graphs/mcp_tools.py's, which are.
PROJECT_GRAPHS = {
    **{g: f"{GRAPHS / f}:graph" for g, f in ALL_GRAPHS.items()},
    **{g: f"{GRAPHS / 'mcp_tools.py'}:{g}" for g in ("echo", "count", "who", "boom")},
}


@pytest.fixture(scope="module")
def server(pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from module_server(pg_admin_dsn, tmp_path_factory, project={
        "graphs": PROJECT_GRAPHS, "http": {"configurable_headers": {"includes": ["x-mcp-*"]}}})


@pytest.fixture(scope="module")
def auth_server(pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """tests/e2e/apps/auth_owner.py's alice, bob and admin (``as_user`` uses this)."""
    yield from module_server(pg_admin_dsn, tmp_path_factory, AUTH_TYPE="custom",
                             project={"graphs": PROJECT_GRAPHS, "auth": {"path": AUTH_PATH}})


@pytest.fixture(autouse=True)
def _logs(request: pytest.FixtureRequest) -> Any:
    """A failing test shows the log of the server it used."""
    name = "auth_server" if "auth_server" in request.fixturenames else "server"
    yield from show_logs_on_failure(request, request.getfixturevalue(name))


@asynccontextmanager
async def mcp_session(url: str, token: str | None = None, *, modern: bool = False
                      ) -> AsyncIterator[ClientSession]:
    """A client session: the handshake (``initialize``), or with ``modern`` the
    2026-07-28 protocol's ``server/discover`` and self-contained requests."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with (httpx2.AsyncClient(headers=headers, timeout=60) as http,
                streamable_http_client(url + "/mcp", http_client=http) as (read, write),
                ClientSession(read, write) as session):
        if modern:
            await session.discover()
        else:
            await session.initialize()
        yield session


async def all_tools(session: ClientSession) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
        tools += page.tools
        if page.next_cursor is None:
            return tools
        cursor = page.next_cursor


def test_tools_are_the_assistants(server: ServerProcess) -> None:
    async def scenario() -> None:
        client = get_client(url=server.url)
        mine = await client.assistants.create(
            "count", name=f"Counter {uuid.uuid4().hex[:6]}", description="Counts to n.")
        assistants = await client.assistants.search(limit=1000)
        schemas = {a["assistant_id"]: (await client.assistants.get_schemas(
            a["assistant_id"]))["input_schema"] for a in assistants}
        async with mcp_session(server.url) as session:
            assert session.initialize_result is not None
            assert session.initialize_result.capabilities.tools is not None
            assert session.initialize_result.server_info.name == "aegra"
            tools = {t.name: t for t in await all_tools(session)}
        # Every assistant whose graph has an input schema, and only those.
        offered = [a for a in assistants if schemas[a["assistant_id"]] is not None]
        assert set(tools) == {tool_name(a["name"]) for a in offered}
        assert {"echo", "count", "who", "boom"} <= set(tools) and "agent" not in tools
        for assistant in offered:
            tool = tools[tool_name(assistant["name"])]
            assert tool.title == assistant["name"]
            assert tool.input_schema == tool_schema(schemas[assistant["assistant_id"]])
            assert tool.description == (assistant["description"]
                                        or f"Tool based on the {assistant['name']} assistant")
        counter = tools[tool_name(mine["name"])]
        assert counter.name == mine["name"].replace(" ", "_")
        assert counter.description == "Counts to n."
        assert counter.input_schema["properties"]["count"]["type"] == "integer"
        assert counter.input_schema["required"] == ["count"]
        # A message list is offered as the one message a model writes.
        assert tools["echo"].input_schema["properties"]["messages"]["type"] == "string"
        assert "$defs" not in tools["echo"].input_schema

    asyncio.run(scenario())


@pytest.mark.parametrize("modern", [False, True], ids=["handshake", "2026-07-28"])
def test_call_tool_answers_the_graphs_output(server: ServerProcess, modern: bool) -> None:
    async def scenario() -> None:
        async with mcp_session(server.url, modern=modern) as session:
            assert "echo" in {t.name for t in await all_tools(session)}
            echoed = await session.call_tool("echo", {"messages": "hi"})
            counted = await session.call_tool("count", {"count": 2, "label": "n"})
            failed = await session.call_tool("boom", {"text": "x"})
        assert not echoed.is_error
        output = echoed.structured_content
        assert output is not None
        assert [m["content"] for m in output["messages"]] == ["hi", "echo: hi"]
        assert json.loads(echoed.content[0].text) == output  # type: ignore[union-attr]
        assert (counted.is_error, counted.structured_content) == (
            False, {"count": 2, "label": "n=2"})
        # A run that fails is a tool error the model can read.
        assert failed.is_error
        assert failed.content[0].text == "ValueError: boom: x"  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_bad_arguments_and_unknown_tools_are_named(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with mcp_session(server.url) as session:
            wrong_type = await session.call_tool("count", {"count": "many"})
            missing = await session.call_tool("count", {"label": "x"})
            with pytest.raises(MCPError) as unknown:
                await session.call_tool("no-such-tool", {})
        assert wrong_type.is_error and missing.is_error
        assert wrong_type.content[0].text == (  # type: ignore[union-attr]
            "invalid argument 'count': 'many' is not of type 'integer'")
        assert missing.content[0].text == (  # type: ignore[union-attr]
            "invalid argument 'count': 'count' is a required property")
        assert unknown.value.code == types.INVALID_PARAMS
        assert unknown.value.message == "Unknown tool: no-such-tool"

    asyncio.run(scenario())


def test_raw_json_rpc_and_malformed_messages(server: ServerProcess) -> None:
    url = server.url + "/mcp"
    with httpx.Client(headers=ACCEPT, timeout=30) as http:
        parse = http.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
        assert parse.status_code == 400
        assert parse.json()["error"]["code"] == types.PARSE_ERROR

        unknown = http.post(url, json={"jsonrpc": "2.0", "id": 7, "method": "tools/nope"})
        assert unknown.status_code == 200
        assert unknown.json()["id"] == 7
        assert unknown.json()["error"]["code"] == types.METHOD_NOT_FOUND

        no_name = http.post(url, json={"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                                       "params": {"arguments": {}}})
        assert no_name.json()["error"]["code"] == types.INVALID_PARAMS

        not_rpc = http.post(url, json={"hello": "world"})
        assert not_rpc.status_code == 400
        assert "error" in not_rpc.json()

        # The platform's ``context`` param of tools/call is the run's context, and the
        # request's headers reach the run as on /runs/wait (http.configurable_headers).
        called = http.post(url, headers={"X-MCP-Test": "yes"}, json={
            "jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "who", "arguments": {}, "context": {"tone": "warm"}}})
        assert called.json()["result"]["structuredContent"] == {
            "identity": None, "tone": "warm", "header": "yes"}

        ping = http.post(url, json={"jsonrpc": "2.0", "id": "p", "method": "ping"})
        assert ping.json() == {"jsonrpc": "2.0", "id": "p", "result": {}}
        note = http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert note.status_code == 202

        # No server stream and no sessions, as on the platform.
        assert http.get(url).status_code == 405
        assert http.delete(url).status_code == 404


def test_users_see_and_run_only_their_assistants(auth_server: ServerProcess,  # noqa: F811
                                                 as_user: Callable[[str], Any]) -> None:  # noqa: F811
    async def scenario() -> None:
        alice, bob = as_user("alice"), as_user("bob")
        tag = uuid.uuid4().hex[:6]
        await alice.assistants.create("who", name=f"alice-who-{tag}")
        await bob.assistants.create("who", name=f"bob-who-{tag}")
        async with mcp_session(auth_server.url, TOKENS["alice"]) as session:
            names = {t.name for t in await all_tools(session)}
            mine = await session.call_tool(f"alice-who-{tag}", {})
            with pytest.raises(MCPError) as theirs:
                await session.call_tool(f"bob-who-{tag}", {})
        expected = {tool_name(a["name"]) for a in await alice.assistants.search(limit=1000)}
        assert names == expected
        assert f"alice-who-{tag}" in names and f"bob-who-{tag}" not in names
        # The run is alice's: the graph sees her identity.
        assert mine.structured_content is not None
        assert mine.structured_content["identity"] == "alice"
        assert theirs.value.message == f"Unknown tool: bob-who-{tag}"

        # Without credentials the endpoint is closed like every other.
        async with httpx.AsyncClient(headers=ACCEPT) as http:
            response = await http.post(auth_server.url + "/mcp",
                                       json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert response.status_code == 401

    asyncio.run(scenario())
