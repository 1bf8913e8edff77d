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

from aegra.adapters.postgres import assistants as db
from aegra.api.deps import deps
from aegra.api.openapi import documented
from aegra.api.wire import body, field_of, json
from aegra.domain.errors import BadRequest, Conflict, Invalid, NotFound

bp = Blueprint("assistants", __name__)
TAG = "assistants"

SortBy = Literal["assistant_id", "created_at", "updated_at", "name", "graph_id"]
Field = Literal["assistant_id", "graph_id", "name", "description", "config", "context",
                "created_at", "updated_at", "metadata", "version"]
Limit = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Offset = Annotated[int, msgspec.Meta(ge=0)]
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
    version: int


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


class _ConfigShape(msgspec.Struct):
    """The typed keys of a RunnableConfig; other keys pass through untouched."""

    tags: list[str] | None = None
    recursion_limit: int | None = None
    configurable: Obj | None = None


def _check_config(config: Obj | None) -> Obj:
    config = dict(config or {})
    try:
        msgspec.convert(config, _ConfigShape)
    except msgspec.ValidationError as exc:
        path = field_of(str(exc))
        field = f"config.{path}" if path else "config"
        raise Invalid(f"invalid field '{field}': {str(exc).split(' - at ')[0]}",
                      field=field) from None
    return config


def _mirror(config: Obj, context: Obj | None) -> tuple[Obj, Obj | None]:
    """Keep ``config.configurable`` and ``context`` equal: LangGraph 0.6 renamed one to
    the other and the platform accepts either, but not both."""
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


def _require_graph(graph_id: str | None) -> None:
    graphs = deps().graphs
    if graph_id is not None and graph_id not in graphs:
        raise NotFound(f"Graph '{graph_id}' not found. Expected one of: {sorted(graphs.ids())}")


def _aid(value: str) -> str:
    return db.canonical_id(deps().graphs, value)


@bp.post("/assistants")
@documented(body=AssistantCreate, response=Assistant, tag=TAG)
async def create_assistant() -> Response:
    """Create an assistant."""
    req = await body(AssistantCreate)
    if req.assistant_id is not None:
        try:
            assistant_id = str(UUID(req.assistant_id))
        except ValueError:
            raise Invalid("Invalid assistant ID: must be a UUID", field="assistant_id") from None
    else:
        assistant_id = str(uuid4())
    _require_graph(req.graph_id)
    config, context = _mirror(_check_config(req.config), req.context)
    row, created = await db.create(
        deps().pg, assistant_id=assistant_id, graph_id=req.graph_id,
        name=req.name or "Untitled", description=req.description, config=config,
        context=context or {}, metadata=req.metadata or {})
    if not created and (req.if_exists or "raise") == "raise":
        raise Conflict(f"Assistant '{assistant_id}' already exists")
    return json(row)


@bp.post("/assistants/search")
@documented(body=AssistantSearch, response=list[Assistant], tag=TAG)
async def search_assistants() -> Response:
    """Search assistants (metadata containment, graph_id, name substring); paginated."""
    req = await body(AssistantSearch)
    _require_graph(req.graph_id)
    d = deps()
    rows, next_offset = await db.search(
        d.pg, d.graphs.ids(), graph_id=req.graph_id, name=req.name, metadata=req.metadata,
        limit=req.limit, offset=req.offset, sort_by=req.sort_by, sort_order=req.sort_order)
    if req.select:
        rows = [{k: row[k] for k in db.COLUMNS if k in req.select} for row in rows]
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
    _require_graph(req.graph_id)
    d = deps()
    return json(await db.count(d.pg, d.graphs.ids(), graph_id=req.graph_id, name=req.name,
                               metadata=req.metadata))


@bp.get("/assistants/<assistant_id>")
@documented(response=Assistant, tag=TAG)
async def get_assistant(assistant_id: str) -> Response:
    """Get an assistant by id (or by graph id: its default assistant)."""
    d = deps()
    return json(await db.get(d.pg, d.graphs, assistant_id))


@bp.patch("/assistants/<assistant_id>")
@documented(body=AssistantPatch, response=Assistant, tag=TAG)
async def patch_assistant(assistant_id: str) -> Response:
    """Update an assistant: adds a version and makes it current."""
    req = await body(AssistantPatch)
    _require_graph(req.graph_id)
    config, context = _mirror(_check_config(req.config), req.context)
    return json(await db.patch(
        deps().pg, _aid(assistant_id), graph_id=req.graph_id, config=config or None,
        context=context, metadata=req.metadata, name=req.name, description=req.description))


@bp.delete("/assistants/<assistant_id>")
@documented(tag=TAG, status=204)
async def delete_assistant(assistant_id: str) -> Response:
    """Delete an assistant; ``?delete_threads=true`` also deletes its threads."""
    d = deps()
    delete_threads = request.args.get("delete_threads", "").lower() == "true"
    aid = _aid(assistant_id)
    # Its in-flight runs stop first; their rows then go with the assistant (cascade).
    runs = d.services.runs
    if True:
        active = [r["run_id"] for r in await d.pg.fetch(
            """SELECT run_id FROM runs WHERE assistant_id = $1
               AND status IN ('pending', 'running')""", aid)]
        if active:
            await runs.cancel(active, "interrupt")
    thread_ids = await db.delete(d.pg, aid, delete_threads=delete_threads)
    await d.graphs.delete_checkpoints(thread_ids)
    return Response(b"", status=204)


@bp.post("/assistants/<assistant_id>/versions")
@documented(body=VersionsSearch, tag=TAG)
async def assistant_versions(assistant_id: str) -> Response:
    """Versions of an assistant, newest first."""
    req = await body(VersionsSearch)
    return json(await db.versions(deps().pg, _aid(assistant_id), metadata=req.metadata,
                                  limit=req.limit, offset=req.offset))


@bp.post("/assistants/<assistant_id>/latest")
@documented(body=VersionChange, response=Assistant, tag=TAG)
async def set_latest_version(assistant_id: str) -> Response:
    """Make an earlier version current."""
    req = await body(VersionChange)
    return json(await db.set_latest(deps().pg, _aid(assistant_id), req.version))


async def _graph_and_config(assistant_id: str) -> tuple[str, Obj]:
    d = deps()
    row = await db.get(d.pg, d.graphs, assistant_id)
    config = dict(row["config"])
    config["configurable"] = dict(config.get("configurable") or {})
    return row["graph_id"], config


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
    graph_id, config = await _graph_and_config(assistant_id)
    return json(await deps().graphs.drawing(graph_id, config, xray))


@bp.get("/assistants/<assistant_id>/schemas")
@documented(tag=TAG)
async def assistant_schemas(assistant_id: str) -> Response:
    """Input, output, state, config and context JSON Schemas of the assistant's graph."""
    graph_id, config = await _graph_and_config(assistant_id)
    return json(await deps().graphs.schemas(graph_id, config))


@bp.get("/assistants/<assistant_id>/subgraphs")
@bp.get("/assistants/<assistant_id>/subgraphs/<path:namespace>")
@documented(tag=TAG)
async def assistant_subgraphs(assistant_id: str, namespace: str | None = None) -> Response:
    """Schemas of the graph's subgraphs, by namespace (``?recurse=true`` for nested ones)."""
    recurse = request.args.get("recurse", "false") in ("true", "True", "1")
    graph_id, config = await _graph_and_config(assistant_id)
    return json(await deps().graphs.subgraphs(graph_id, config, namespace, recurse))
