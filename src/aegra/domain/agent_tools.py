"""Assistants seen as tools (the /mcp endpoint): tool names, schemas, argument checks.

Pure rules, no I/O. An assistant becomes a tool named after the assistant's name made
valid for MCP (``[A-Za-z0-9_.-]{1,128}``), described by its description, and taking the
graph's input schema. LangChain message lists are offered as a plain string (what a
model can write; LangGraph's ``add_messages`` turns a string into a human message), as
the platform does, and the arguments are checked against that advertised schema, so a
bad call is refused naming the field before any run is created.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema
import msgspec

from aegra.domain.errors import Invalid

NAME_MAX = 128
_INVALID = re.compile(r"[^A-Za-z0-9_.-]")
_SPACES = re.compile(r"\s+")

_MESSAGE_TYPES = frozenset({
    "AIMessage", "AIMessageChunk", "HumanMessage", "HumanMessageChunk", "ChatMessage",
    "ChatMessageChunk", "SystemMessage", "SystemMessageChunk", "FunctionMessage",
    "FunctionMessageChunk", "ToolMessage", "ToolMessageChunk",
})
# Types only the message definitions refer to: dropped with them.
_MESSAGE_PARTS = frozenset({
    "ToolCall", "ToolCallChunk", "InvalidToolCall", "UsageMetadata", "InputTokenDetails",
    "OutputTokenDetails",
})
_DEFS = "#/$defs/"


class Tool(msgspec.Struct, frozen=True, kw_only=True):
    """One assistant as a tool: ``name`` is what clients call, ``title`` the assistant's
    own name."""

    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    assistant_id: str


class ToolResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a call produced: the run's final values, or its error as text."""

    output: Any = None
    error: str | None = None


def tool_name(name: str) -> str:
    """The MCP tool name for an assistant name (may be empty: such an assistant is not
    offered as a tool)."""
    return _INVALID.sub("", _SPACES.sub("_", name.strip()))[:NAME_MAX]


def describe(row: dict[str, Any]) -> str:
    return row.get("description") or f"Tool based on the {row['name']} assistant"


def _is_message_list(prop: object) -> bool:
    if not isinstance(prop, dict) or prop.get("type") != "array":
        return False
    items = prop.get("items")
    if not isinstance(items, dict):
        return False
    choices = items.get("oneOf") or items.get("anyOf") or []
    return any(isinstance(c, dict) and str(c.get("$ref", "")).removeprefix(_DEFS)
               in _MESSAGE_TYPES for c in choices)


def tool_schema(input_schema: dict[str, Any] | None) -> dict[str, Any]:
    """The graph's input schema as a tool's ``inputSchema`` (a new dict): message lists
    become a string, their definitions go, and the type is ``object`` as MCP requires."""
    schema = copy.deepcopy(input_schema) if input_schema else {}
    defs = schema.get("$defs")
    if isinstance(defs, dict) and set(defs) & _MESSAGE_TYPES:
        for key in _MESSAGE_TYPES | _MESSAGE_PARTS:
            defs.pop(key, None)
        if not defs:
            del schema["$defs"]
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        for key, prop in props.items():
            if _is_message_list(prop):
                props[key] = {"type": "string", "title": prop.get("title", key),
                              "description": "The user message to send to the agent."}
    schema.setdefault("type", "object")
    return schema


def check_arguments(schema: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Raise Invalid naming the first argument that does not fit ``schema``. A schema the
    validator cannot read checks nothing: the graph itself is then the judge."""
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
    except jsonschema.SchemaError:
        return
    errors = sorted(cls(schema).iter_errors(arguments), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    first = errors[0]
    path = ".".join(str(p) for p in first.absolute_path)
    if not path and first.validator == "required":
        # "'x' is a required property": the missing key is the field.
        missing = [k for k in first.validator_value if k not in arguments]
        path = str(missing[0]) if missing else ""
    field = path or "arguments"
    raise Invalid(f"invalid argument '{field}': {first.message}", field=field)
