"""Assistants: the pure rules (ids, config/context mirroring) and the data the port moves.

An assistant is addressed by its UUID or by a graph id, which names the graph's default
("system") assistant: ``uuid5(NAMESPACE_GRAPH, graph_id)``, the id LangGraph Platform
gives it, so clients may hard-code it. Rows cross the port as plain dicts in the wire
order of the platform's Assistant object (``COLUMNS``; versions: ``VERSION_COLUMNS``),
timestamps as ISO-8601 strings: JSON-shaped user data (config, context, metadata) passes
through untouched, so a Struct would only add a copy.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any, Literal
from uuid import UUID, uuid5

import msgspec

from aegra.domain.errors import BadRequest, NotFound

# RFC 4122 URL namespace: LangGraph Platform's ``NAMESPACE_GRAPH``; the oracle's default
# assistant of graph "agent" is fe096781-5601-53d2-b2f6-0d3403f7e9ca.
NAMESPACE_GRAPH = UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")

# The defaults made per graph at startup carry this; spec/auth.md item 12.
SYSTEM_METADATA: dict[str, Any] = {"created_by": "system"}

COLUMNS = ("assistant_id", "graph_id", "config", "context", "metadata", "name", "created_at",
           "updated_at", "version", "description")
VERSION_COLUMNS = ("assistant_id", "version", "graph_id", "config", "context", "metadata",
                   "created_at", "name", "description")

Row = dict[str, Any]  # one assistant (COLUMNS) or one version (VERSION_COLUMNS)
SortBy = Literal["assistant_id", "created_at", "updated_at", "name", "graph_id"]


def default_assistant_id(graph_id: str) -> str:
    return str(uuid5(NAMESPACE_GRAPH, graph_id))


def canonical_id(graph_ids: Container[str], value: str) -> str:
    """A graph id names its default assistant; UUIDs compare in canonical form."""
    if value in graph_ids:
        return default_assistant_id(value)
    try:
        return str(UUID(value))
    except ValueError:
        return value


def as_uuid(value: str) -> UUID | str:
    """What an ``@auth.on`` handler sees as ``value["assistant_id"]``: a UUID, as on the
    platform, unless the client named something that is not one (then it is not found)."""
    try:
        return UUID(value)
    except ValueError:
        return value


def not_found(assistant_id: str) -> NotFound:
    return NotFound(f"Assistant '{assistant_id}' not found")


def is_system(metadata: dict[str, Any] | None) -> bool:
    return bool((metadata or {}).get("created_by") == SYSTEM_METADATA["created_by"])


def mirror(config: dict[str, Any], context: dict[str, Any] | None
           ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Keep ``config.configurable`` and ``context`` equal: LangGraph 0.6 renamed one to
    the other and the platform accepts either, but not both (400)."""
    if config.get("configurable") and context:
        raise BadRequest(
            "Cannot specify both configurable and context. Prefer setting context alone. "
            "Context was introduced in LangGraph 0.6.0 and is the long term planned "
            "replacement for configurable.")
    if config.get("configurable"):
        context = config["configurable"]
    elif context:
        config["configurable"] = context
    return config, context


class NewAssistant(msgspec.Struct, frozen=True, kw_only=True):
    assistant_id: str
    graph_id: str
    name: str
    description: str | None
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]


class Changes(msgspec.Struct, frozen=True, kw_only=True):
    """A PATCH: ``None`` keeps the field."""

    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None


class Query(msgspec.Struct, frozen=True, kw_only=True):
    """Search and count criteria (``name``: case-insensitive literal substring;
    ``metadata``: JSON containment)."""

    graph_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] | None = None


class Page(msgspec.Struct, frozen=True, kw_only=True):
    limit: int = 10
    offset: int = 0
    sort_by: SortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None


class ThreadCascade(msgspec.Struct, frozen=True, kw_only=True):
    """Threads to delete with their assistant: these ids, each only if it passes
    ``where`` (the caller's threads.delete filter). ``thread_ids=None``: every thread
    whose metadata names the assistant (no authorization: AUTH_TYPE=noop)."""

    thread_ids: list[str] | None = None
    where: dict[str, Any] | None = None


PATCHED = ("graph_id", "config", "context", "metadata", "name", "description")


def merged(current: Row, changes: Changes) -> tuple[Any, ...]:
    """The patched fields (``PATCHED`` order) of a new version: ``None`` keeps a field,
    ``metadata`` merges into the current one (platform rule)."""
    c = changes
    return (c.graph_id or current["graph_id"],
            current["config"] if c.config is None else c.config,
            current["context"] if c.context is None else c.context,
            current["metadata"] if c.metadata is None else {**current["metadata"],
                                                            **c.metadata},
            current["name"] if c.name is None else c.name,
            current["description"] if c.description is None else c.description)
