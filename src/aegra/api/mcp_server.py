"""The MCP side of ``/mcp`` (``api/mcp.py`` is the route): the official SDK's server.

Imported on the first ``/mcp`` request, not at startup: the SDK's pydantic models take
about a second to build, which every server start (and every test server) would pay.

The protocol is the official ``mcp`` SDK's (anyio, so it runs natively on Trio): its
low-level ``Server`` answers ``initialize``, ``ping``, ``tools/list`` and ``tools/call``
and turns malformed JSON-RPC into JSON-RPC errors; its session manager, stateless and
answering ``application/json``, is the transport. Like the platform we keep no MCP
session: each POST is answered on its own, so any instance can take any request.

A manager is made per request and its task group lives inside the request's task, so
the SDK's tasks are children of the request: cancelled with it, and never outliving it.
The request reaches the SDK as an ASGI call on the same scope, after our own edge
(request id, CORS, authentication) has run; the caller and the tools service ride along
in the scope, and the two tool handlers each make one ``AgentTools`` call with them.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import mcp.types as types
import msgspec
import trio
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from quart import Response
from werkzeug.datastructures import Headers

from aegra import __version__, logs
from aegra.domain.agent_tools import Tool, ToolResult
from aegra.domain.auth import Caller
from aegra.domain.errors import DomainError, Invalid, NotFound
from aegra.services.agent_tools import AgentTools

log = logs.get_logger("aegra.mcp")

_SCOPE_KEY = "aegra.mcp"
# Hints for clients that ask before running a tool: an assistant run may change
# anything its graph touches, so no promise of read-only or idempotent.
_ANNOTATIONS = types.ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                     idempotent_hint=False, open_world_hint=True)


@dataclass(frozen=True, slots=True)
class Request:
    """What the tool handlers need from the HTTP request."""

    caller: Caller
    tools: AgentTools
    headers: list[tuple[str, str]]


def _ours(ctx: ServerRequestContext[Any, Any]) -> Request:
    assert ctx.request is not None  # HTTP transport: the request is always there
    found: Request = ctx.request.scope[_SCOPE_KEY]  # set by ``serve``
    return found


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """Our errors as JSON-RPC errors. An unknown tool or a bad request is the client's
    mistake (invalid params); a domain error it cannot fix by changing the params
    (forbidden, unavailable) is an internal error with its message; anything else is a
    generic internal error, the traceback only in our log (the SDK would send
    ``str(exc)``)."""
    try:
        yield
    except DomainError as exc:
        code = (types.INVALID_PARAMS if isinstance(exc, NotFound | Invalid)
                else types.INTERNAL_ERROR)
        raise MCPError(code=code, message=exc.message) from None
    except MCPError:
        raise
    except Exception as exc:
        log.error("mcp.handler_failed", error=repr(exc), exc_info=exc)
        raise MCPError(code=types.INTERNAL_ERROR, message="Internal server error") from None


def _tool(tool: Tool) -> types.Tool:
    return types.Tool(name=tool.name, title=tool.title, description=tool.description,
                      input_schema=tool.input_schema, annotations=_ANNOTATIONS)


def _cursor(params: types.PaginatedRequestParams | None) -> int:
    # The cursor is opaque to clients; ours is an offset. A foreign one starts over.
    raw = params.cursor if params is not None else None
    try:
        return max(int(raw or 0), 0)
    except ValueError:
        return 0


async def _list_tools(ctx: ServerRequestContext[Any, Any],
                      params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    ours = _ours(ctx)
    with _mapped_errors():
        tools, next_offset = await ours.tools.page(ours.caller, _cursor(params))
    return types.ListToolsResult(tools=[_tool(t) for t in tools],
                                 next_cursor=None if next_offset is None else str(next_offset))


def _text_result(result: ToolResult) -> types.CallToolResult:
    if result.error is not None:
        return types.CallToolResult(content=[types.TextContent(type="text", text=result.error)],
                                    is_error=True)
    text = msgspec.json.encode(result.output).decode()
    structured = result.output if isinstance(result.output, dict) else None
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                structured_content=structured)


async def _call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
                     ) -> types.CallToolResult:
    ours = _ours(ctx)
    # ``context`` (the graph's runtime context) is the platform's extension of tools/call.
    context = (ctx.params or {}).get("context")
    with _mapped_errors():
        try:
            result = await ours.tools.call(ours.caller, params.name, params.arguments or {},
                                           context if isinstance(context, dict) else None,
                                           ours.headers)
        except Invalid as exc:
            if exc.field == "name":
                raise
            # Arguments that do not fit the schema: a tool error the model reads and fixes.
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=exc.message)], is_error=True)
    return _text_result(result)


SERVER: Server[Any] = Server("aegra", version=__version__, on_list_tools=_list_tools,
                             on_call_tool=_call_tool)


async def serve(scope: dict[str, Any], body: bytes, ours: Request) -> Response:
    """One ASGI exchange with the SDK on ``scope``; its (buffered, JSON) answer."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await trio.sleep_forever()  # the client is still there: our task ends with it
        raise AssertionError("unreachable")

    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    scope = {**scope, _SCOPE_KEY: ours}
    manager = StreamableHTTPSessionManager(SERVER, stateless=True, json_response=True)
    async with manager.run():
        await manager.handle_request(scope, receive, send)
    headers = Headers([(k.decode("latin-1"), v.decode("latin-1"))
                       for k, v in start.get("headers", []) if k.lower() != b"content-length"])
    return Response(b"".join(chunks), status=start.get("status", 500), headers=headers)
