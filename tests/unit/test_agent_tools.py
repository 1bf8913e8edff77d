"""Assistants as MCP tools, the pure rules: names, advertised schemas, argument checks."""

from __future__ import annotations

from typing import Any

import pytest

from aegra.domain.agent_tools import check_arguments, describe, tool_name, tool_schema
from aegra.domain.errors import Invalid


@pytest.mark.parametrize(("name", "expected"), [
    ("agent", "agent"),
    ("  My   research agent ", "My_research_agent"),
    ("café: v1.2 (beta)", "caf_v1.2_beta"),
    ("a-b_c.d", "a-b_c.d"),
    ("!!!", ""),
    ("x" * 200, "x" * 128),
])
def test_tool_names_are_valid_mcp_names(name: str, expected: str) -> None:
    assert tool_name(name) == expected


def test_description_defaults_to_the_assistants_name() -> None:
    assert describe({"name": "agent", "description": None}) == \
        "Tool based on the agent assistant"
    assert describe({"name": "agent", "description": "Echoes."}) == "Echoes."


def _message_schema() -> dict[str, Any]:
    ref = {"$ref": "#/$defs/HumanMessage"}
    return {
        "type": "object", "title": "State",
        "properties": {
            "messages": {"type": "array", "title": "Messages",
                         "items": {"oneOf": [ref, {"$ref": "#/$defs/AIMessage"}]}},
            "topic": {"$ref": "#/$defs/Topic"},
        },
        "$defs": {"HumanMessage": {"type": "object"}, "AIMessage": {"type": "object"},
                  "ToolCall": {"type": "object"}, "Topic": {"type": "string"}},
    }


def test_message_lists_become_a_string_and_their_definitions_go() -> None:
    original = _message_schema()
    schema = tool_schema(original)
    assert schema["properties"]["messages"] == {
        "type": "string", "title": "Messages",
        "description": "The user message to send to the agent."}
    assert schema["$defs"] == {"Topic": {"type": "string"}}  # others' definitions stay
    assert original == _message_schema()  # the graph's schema is not touched


def test_a_schema_is_always_an_object() -> None:
    assert tool_schema(None) == {"type": "object"}
    assert tool_schema({"properties": {"n": {"type": "integer"}}})["type"] == "object"


SCHEMA = {
    "type": "object", "required": ["count"],
    "properties": {
        "count": {"type": "integer"},
        "options": {"type": "object", "properties": {"depth": {"type": "integer"}}},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


@pytest.mark.parametrize(("arguments", "field", "message"), [
    ({"count": "many"}, "count", "invalid argument 'count': 'many' is not of type 'integer'"),
    ({}, "count", "invalid argument 'count': 'count' is a required property"),
    ({"count": 1, "options": {"depth": "deep"}}, "options.depth",
     "invalid argument 'options.depth': 'deep' is not of type 'integer'"),
    ({"count": 1, "tags": ["a", 2]}, "tags.1",
     "invalid argument 'tags.1': 2 is not of type 'string'"),
])
def test_bad_arguments_name_the_field(arguments: dict[str, Any], field: str,
                                      message: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_arguments(SCHEMA, arguments)
    assert (caught.value.field, caught.value.message) == (field, message)


def test_good_arguments_and_unreadable_schemas_pass() -> None:
    check_arguments(SCHEMA, {"count": 3, "tags": ["a"], "extra": True})
    # A schema the validator cannot read leaves the judgement to the graph.
    check_arguments({"type": "object", "properties": {"n": {"type": 12}}}, {"n": "x"})
