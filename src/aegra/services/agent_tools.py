"""The caller's assistants as tools (the /mcp endpoint), built on the two services that
own them: every read goes through ``AssistantService`` and every run through
``RunService``, with the caller, so the tools a caller sees are the assistants their
``assistants.search`` and ``assistants.read`` authorization lets through, and a call is a
stateless run created as them (``threads.create_run``), exactly as ``POST /runs/wait``.

Names are not unique: assistants whose tool names coincide are offered once (the first
in search order) and calling that name is refused as ambiguous, as on the platform,
rather than running an arbitrary one of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aegra import logs
from aegra.domain.agent_tools import (
    Tool,
    ToolResult,
    check_arguments,
    describe,
    tool_name,
    tool_schema,
)
from aegra.domain.auth import Caller
from aegra.domain.errors import Invalid, NotFound
from aegra.services.assistants import AssistantService
from aegra.services.runs import RunService, wait_payload

log = logs.get_logger("aegra.mcp")
PAGE = 100  # tools per tools/list page
_SCAN = 1000  # assistants read per query when looking a tool name up


class AgentTools:
    def __init__(self, assistants: AssistantService, runs: RunService) -> None:
        self.assistants = assistants
        self.runs = runs

    async def _search(self, caller: Caller, offset: int, limit: int
                      ) -> tuple[list[dict[str, Any]], int | None]:
        return await self.assistants.search(
            caller, graph_id=None, name=None, metadata=None, limit=limit, offset=offset,
            sort_by=None, sort_order=None, select=None)

    async def _tool(self, caller: Caller, row: dict[str, Any], name: str) -> Tool | None:
        """The assistant as a tool; None when its graph has no input schema to offer."""
        schemas = await self.assistants.schemas(caller, str(row["assistant_id"]))
        if schemas.get("input_schema") is None:
            log.warning("mcp.tool_skipped", assistant_id=str(row["assistant_id"]),
                        reason="the graph's input schema could not be generated")
            return None
        return Tool(name=name, title=row["name"], description=describe(row),
                    input_schema=tool_schema(schemas["input_schema"]),
                    assistant_id=str(row["assistant_id"]))

    async def page(self, caller: Caller, offset: int) -> tuple[list[Tool], int | None]:
        """One page of the caller's tools and the offset of the next (None: last page)."""
        rows, next_offset = await self._search(caller, max(offset, 0), PAGE)
        seen: set[str] = set()
        tools: list[Tool] = []
        for row in rows:
            name = tool_name(row.get("name") or "")
            if not name or name in seen:
                if name:
                    log.warning("mcp.duplicate_tool_name", name=name,
                                assistant_id=str(row["assistant_id"]))
                continue
            seen.add(name)
            try:
                tool = await self._tool(caller, row, name)
            except NotFound:  # deleted (or hidden) since the search: not a tool any more
                continue
            if tool is not None:
                tools.append(tool)
        return tools, next_offset

    async def find(self, caller: Caller, name: str) -> Tool:
        """The caller's one tool called ``name``: NotFound if none, Invalid if several
        assistants share the name."""
        matches: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            rows, offset = await self._search(caller, offset, _SCAN)
            matches += [r for r in rows if tool_name(r.get("name") or "") == name]
        if not matches:
            raise NotFound(f"Unknown tool: {name}", field="name")
        if len(matches) > 1:
            raise Invalid(f"Tool name '{name}' is ambiguous: {len(matches)} assistants "
                          f"share it; rename all but one", field="name")
        tool = await self._tool(caller, matches[0], name)
        if tool is None:
            raise NotFound(f"Unknown tool: {name}", field="name")
        return tool

    async def call(self, caller: Caller, name: str, arguments: dict[str, Any],
                   context: dict[str, Any] | None = None,
                   headers: Iterable[tuple[str, str]] | None = None) -> ToolResult:
        """Run the tool's assistant on ``arguments`` (checked against the tool's schema:
        Invalid naming the field) as a stateless run, and wait for its final values.
        ``headers``: the HTTP request's (``http.configurable_headers`` applies)."""
        tool = await self.find(caller, name)
        check_arguments(tool.input_schema, arguments)
        body: dict[str, Any] = {"assistant_id": tool.assistant_id, "input": arguments}
        if context:
            body["context"] = context
        run = await self.runs.create(caller, body, thread_id=None, headers=headers)
        payload = wait_payload(await self.runs.result(run["run_id"], None))
        if isinstance(payload, dict) and "__error__" in payload:
            error = payload["__error__"]
            if isinstance(error, dict):
                kind, message = error.get("error"), error.get("message")
                text = f"{kind}: {message}" if kind and message else str(kind or message)
            else:
                text = str(error)
            return ToolResult(error=text)
        return ToolResult(output=payload)
