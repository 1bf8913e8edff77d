"""``/mcp``: the caller's assistants as MCP tools over Streamable HTTP (the route).

The protocol is the official ``mcp`` SDK's, in ``api/mcp_server.py``. That module is
imported on the first request, in a thread, so neither startup nor the event loop pays
for building the SDK's models (about a second) on a server no MCP client talks to.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import trio
from quart import Blueprint, Response, request

from aegra.api.auth import caller
from aegra.api.deps import services
from aegra.services.agent_tools import AgentTools

bp = Blueprint("mcp", __name__)

_server: ModuleType | None = None


async def _sdk() -> ModuleType:
    global _server
    if _server is None:
        _server = await trio.to_thread.run_sync(importlib.import_module, "aegra.api.mcp_server")
    return _server


@bp.route("/mcp", methods=["POST", "GET", "DELETE"])
async def endpoint() -> Response:
    """MCP Streamable HTTP: POST one JSON-RPC message (initialize, ping, tools/list,
    tools/call, notifications); answered with JSON. No server-sent stream (GET: 405) and
    no sessions to end (DELETE: 404), as on the platform."""
    if request.method == "GET":
        return Response(b"", status=405, headers={"Allow": "POST, DELETE"})
    if request.method == "DELETE":
        return Response(b"", status=404)
    body = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    sdk = await _sdk()
    ours = sdk.Request(caller=caller(), tools=AgentTools(services().assistants, services().runs),
                       headers=list(request.headers.items()))
    response: Response = await sdk.serve(dict(request.scope), body, ours)
    return response
