"""``/mcp`` in process: served by the SDK inside our app (the edge's authentication
first), and absent (404) when the project file sets ``http.disable_mcp``. The tools
themselves, over real graphs and runs, are tests/e2e/test_mcp.py's."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import mcp.types as types

from aegra import config
from aegra.api.app import create_app
from aegra.api.deps import Deps
from aegra.domain.assistants import NewAssistant
from aegra.project import HttpProjectCfg, Project, empty
from aegra.runtime.board import Board
from aegra.runtime.registry import RunRegistry
from aegra.services.assistants import AssistantService
from tests.api.conftest import Api, Graphs

ACCEPT = {"Accept": "application/json, text/event-stream"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "test", "version": "0"}}}


async def test_initialize_and_list_through_the_sdk(make_api: Callable[..., Awaitable[Api]]
                                                   ) -> None:
    api = await make_api()
    response = await api.client.post("/mcp", json=INITIALIZE, headers=ACCEPT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert "X-Request-ID" in response.headers  # our edge ran around the SDK
    result = (await response.get_json())["result"]
    assert result["protocolVersion"] == "2025-06-18"
    assert result["capabilities"]["tools"] == {"listChanged": False}
    assert result["serverInfo"]["name"] == "aegra"
    # The memory catalog offers no input schema: no assistant is a tool.
    listed = await api.client.post("/mcp", headers=ACCEPT, json={
        "jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert (await listed.get_json())["result"] == {"tools": []}


async def test_custom_auth_runs_before_the_sdk(make_api: Callable[..., Awaitable[Api]]
                                               ) -> None:
    api = await make_api(owner_auth=True)
    assert (await api.client.post("/mcp", json=INITIALIZE, headers=ACCEPT)).status_code == 401
    response = await api.client.post("/mcp", json=INITIALIZE,
                                     headers={**ACCEPT, **api.headers("alice")})
    assert response.status_code == 200


async def test_disable_mcp_removes_the_endpoint(make_api: Callable[..., Awaitable[Api]]
                                                ) -> None:
    project = Project(root=Path("."), source="", http=HttpProjectCfg(disable_mcp=True))
    api = await make_api(project=project)
    for method in ("POST", "GET", "DELETE"):
        status, _ = await api.call(method, "/mcp", json=INITIALIZE, headers=ACCEPT)
        assert status == 404, method
    rules = {rule.rule for rule in api.client.app.url_map.iter_rules()}
    assert "/mcp" not in rules and "/assistants/search" in rules
    paths = (await api.call("GET", "/openapi.json"))[1]["paths"]
    assert "/mcp" not in paths
    full = await make_api()
    assert "/mcp" in (await full.call("GET", "/openapi.json"))[1]["paths"]


class SchemaGraphs(Graphs):
    """The memory catalog with an input schema, so assistants become tools."""

    async def schemas(self, graph_id: str, config: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
        return {"graph_id": graph_id, "input_schema": {
            "type": "object", "properties": {"n": {"type": "integer"}}}}


async def _tools_api(api: Api) -> Any:
    """The app over ``api``'s adapters, its graphs offering an input schema."""
    services = dataclasses.replace(api.services, assistants=AssistantService(
        store=api.assistants, graphs=SchemaGraphs(), runs=api.services.runs, auth=api.auth))
    deps = Deps(config=config.load(None, {}).config, project=empty(Path(".")),
                board=Board(ready=True), registry=RunRegistry(), version="test",
                services=services)
    return create_app(deps).test_client()


async def _rpc(client: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/mcp", headers=ACCEPT, json={
        "jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    assert response.status_code == 200
    found: dict[str, Any] = await response.get_json()
    return found


async def test_tools_come_in_pages_and_shared_names_once(
        make_api: Callable[..., Awaitable[Api]]) -> None:
    api = await make_api()
    for i in range(149):  # with the system assistant "agent": 150
        await api.assistants.create(NewAssistant(
            assistant_id=str(uuid.uuid4()), graph_id="agent", name=f"tool {i:03d}",
            description=None, config={}, context={}, metadata={}))
    for _ in range(2):  # two assistants whose names make the same tool name
        await api.assistants.create(NewAssistant(
            assistant_id=str(uuid.uuid4()), graph_id="agent", name="twin!",
            description=None, config={}, context={}, metadata={}))
    client = await _tools_api(api)
    first = (await _rpc(client, "tools/list", {}))["result"]
    assert first["nextCursor"] == "100"  # 100 assistants a page
    second = (await _rpc(client, "tools/list", {"cursor": "100"}))["result"]
    assert "nextCursor" not in second
    names = [t["name"] for t in first["tools"] + second["tools"]]
    assert len(names) == len(set(names)) == 151  # 152 assistants, the twins once
    assert {"agent", "tool_000", "tool_148", "twin"} <= set(names)
    assert first["tools"][0]["inputSchema"] == {
        "type": "object", "properties": {"n": {"type": "integer"}}}
    # A foreign cursor starts over rather than failing.
    again = (await _rpc(client, "tools/list", {"cursor": "not-ours"}))["result"]
    assert again["tools"] == first["tools"]
    # Calling the shared name is refused as ambiguous, before any run is made.
    error = (await _rpc(client, "tools/call", {"name": "twin", "arguments": {}}))["error"]
    assert error["code"] == types.INVALID_PARAMS
    assert error["message"] == ("Tool name 'twin' is ambiguous: 2 assistants share it; "
                                "rename all but one")
    # Arguments that do not fit the schema: a tool error naming the field, and no run.
    bad = (await _rpc(client, "tools/call", {"name": "tool_007",
                                             "arguments": {"n": "seven"}}))["result"]
    assert bad == {"content": [{"type": "text", "text":
                                "invalid argument 'n': 'seven' is not of type 'integer'"}],
                   "isError": True}
    assert await api.queue.depth() == 0
