"""Assistants (spec §1, §2.1): CRUD, search/count, versions, graph introspection.

Status codes and merge rules follow the ``langgraph dev`` oracle: unknown graph -> 404
(the spec's 400 predates it), ``config.configurable`` and ``context`` both set -> 400,
PATCH merges ``metadata`` and keeps ``config`` unless a non-empty one is sent, DELETE ->
204. Every ``{assistant_id}`` also accepts a graph id (its default assistant).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import msgspec
from quart import Blueprint, Response, request

from aegra.api.auth import caller
from aegra.api.deps import services
from aegra.api.openapi import documented
from aegra.api.wire import body, check_config, json
from aegra.domain.assistants import SortBy
from aegra.domain.errors import Invalid

bp = Blueprint("assistants", __name__)
TAG = "assistants"

Field = Literal["assistant_id", "graph_id", "name", "description", "config", "context",
                "created_at", "updated_at", "metadata", "version"]
MAX_INT32 = 2**31 - 1  # the columns are PostgreSQL integers; larger is a 422, never a 500
Limit = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Offset = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT32)]
Version = Annotated[int, msgspec.Meta(ge=1, le=MAX_INT32)]
Obj = dict[str, Any]


class AssistantCreate(msgspec.Struct, kw_only=True):
    graph_id: str
    assistant_id: str | None = None
    config: Obj | None = None
    context: Obj | None = None
    metadata: Obj | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None
    name: str | None = None
    description: str | None = None


class AssistantPatch(msgspec.Struct, kw_only=True):
    graph_id: str | None = None
    config: Obj | None = None
    context: Obj | None = None
    metadata: Obj | None = None
    name: str | None = None
    description: str | None = None


class AssistantSearch(msgspec.Struct, kw_only=True):
    metadata: Obj | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: SortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[Field] | None = None


class AssistantCount(msgspec.Struct, kw_only=True):
    metadata: Obj | None = None
    graph_id: str | None = None
    name: str | None = None


class VersionsSearch(msgspec.Struct, kw_only=True):
    metadata: Obj | None = None
    limit: Limit = 10
    offset: Offset = 0


class VersionChange(msgspec.Struct, kw_only=True):
    version: Version


class Assistant(msgspec.Struct, kw_only=True):
    """The response shape (documentation only: handlers return dicts)."""

    assistant_id: str
    graph_id: str
    config: Obj
    context: Obj
    metadata: Obj
    name: str
    created_at: str
    updated_at: str
    version: int
    description: str | None = None


def _check_config(config: Obj | None) -> Obj:
    return check_config(config)


def _assistant_id(raw: str | None) -> str:
    if raw is None:
        return str(uuid4())
    try:
        return str(UUID(raw))
    except ValueError:
        raise Invalid("Invalid assistant ID: must be a UUID", field="assistant_id") from None


@bp.post("/assistants")
@documented(body=AssistantCreate, response=Assistant, tag=TAG)
async def create_assistant() -> Response:
    """Create an assistant."""
    req = await body(AssistantCreate)
    return json(await services().assistants.create(
        caller(), assistant_id=_assistant_id(req.assistant_id), graph_id=req.graph_id,
        config=_check_config(req.config), context=req.context, metadata=req.metadata,
        name=req.name, description=req.description, if_exists=req.if_exists))


@bp.post("/assistants/search")
@documented(body=AssistantSearch, response=list[Assistant], tag=TAG)
async def search_assistants() -> Response:
    """Search assistants (metadata containment, graph_id, name substring); paginated."""
    req = await body(AssistantSearch)
    rows, next_offset = await services().assistants.search(
        caller(), graph_id=req.graph_id, name=req.name, metadata=req.metadata,
        limit=req.limit, offset=req.offset, sort_by=req.sort_by, sort_order=req.sort_order,
        select=list(req.select) if req.select else None)
    # Platform headers: without a next page the total is exact; with one it is "at least".
    if next_offset is None:
        headers = {"X-Pagination-Total": str(req.offset + len(rows))}
    else:
        headers = {"X-Pagination-Total": str(next_offset + 1),
                   "X-Pagination-Next": str(next_offset)}
    return json(rows, headers=headers)


@bp.post("/assistants/count")
@documented(body=AssistantCount, tag=TAG)
async def count_assistants() -> Response:
    """Count assistants matching the filters (a bare integer)."""
    req = await body(AssistantCount)
    return json(await services().assistants.count(
        caller(), graph_id=req.graph_id, name=req.name, metadata=req.metadata))


@bp.get("/assistants/<assistant_id>")
@documented(response=Assistant, tag=TAG)
async def get_assistant(assistant_id: str) -> Response:
    """Get an assistant by id (or by graph id: its default assistant)."""
    return json(await services().assistants.get(caller(), assistant_id))


@bp.patch("/assistants/<assistant_id>")
@documented(body=AssistantPatch, response=Assistant, tag=TAG)
async def patch_assistant(assistant_id: str) -> Response:
    """Update an assistant: adds a version and makes it current."""
    req = await body(AssistantPatch)
    return json(await services().assistants.patch(
        caller(), assistant_id, graph_id=req.graph_id, config=_check_config(req.config),
        context=req.context, metadata=req.metadata, name=req.name,
        description=req.description))


@bp.delete("/assistants/<assistant_id>")
@documented(tag=TAG, status=204)
async def delete_assistant(assistant_id: str) -> Response:
    """Delete an assistant; ``?delete_threads=true`` also deletes its threads."""
    delete_threads = request.args.get("delete_threads", "").lower() == "true"
    await services().assistants.delete(caller(), assistant_id, delete_threads=delete_threads)
    return Response(b"", status=204)


@bp.post("/assistants/<assistant_id>/versions")
@documented(body=VersionsSearch, tag=TAG)
async def assistant_versions(assistant_id: str) -> Response:
    """Versions of an assistant, newest first."""
    req = await body(VersionsSearch)
    return json(await services().assistants.versions(
        caller(), assistant_id, metadata=req.metadata, limit=req.limit, offset=req.offset))


@bp.post("/assistants/<assistant_id>/latest")
@documented(body=VersionChange, response=Assistant, tag=TAG)
async def set_latest_version(assistant_id: str) -> Response:
    """Make an earlier version current."""
    req = await body(VersionChange)
    return json(await services().assistants.set_latest(caller(), assistant_id, req.version))


def _xray(raw: str | None) -> bool | int:
    if not raw or raw in ("false", "False"):
        return False
    if raw in ("true", "True"):
        return True
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise Invalid("Invalid xray value", field="xray")
    return value


@bp.get("/assistants/<assistant_id>/graph")
@documented(tag=TAG)
async def assistant_graph(assistant_id: str) -> Response:
    """The drawable graph (``?xray=true|N`` expands subgraphs)."""
    xray = _xray(request.args.get("xray"))
    return json(await services().assistants.graph(caller(), assistant_id, xray))


@bp.get("/assistants/<assistant_id>/schemas")
@documented(tag=TAG)
async def assistant_schemas(assistant_id: str) -> Response:
    """Input, output, state, config and context JSON Schemas of the assistant's graph."""
    return json(await services().assistants.schemas(caller(), assistant_id))


@bp.get("/assistants/<assistant_id>/subgraphs")
@bp.get("/assistants/<assistant_id>/subgraphs/<path:namespace>")
@documented(tag=TAG)
async def assistant_subgraphs(assistant_id: str, namespace: str | None = None) -> Response:
    """Schemas of the graph's subgraphs, by namespace (``?recurse=true`` for nested ones)."""
    recurse = request.args.get("recurse", "false") in ("true", "True", "1")
    return json(await services().assistants.subgraphs(caller(), assistant_id, namespace,
                                                      recurse))
