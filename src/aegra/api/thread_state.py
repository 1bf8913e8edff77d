"""Thread state endpoints: current state, state at a checkpoint, update, history (spec §5).

The graph comes from the thread's ``metadata.graph_id``; a thread without one has the
empty state (200) and no history, and refuses updates with 400 as the platform does.
``thread_id`` is always the path's: a ``thread_id`` inside a client's checkpoint object
never reaches the checkpointer (spec §10.21). Mounted under the ``threads`` blueprint.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from quart import Blueprint, Response, request

from aegra.adapters.langgraph import state
from aegra.adapters.postgres.threads import PgThreads
from aegra.api import wire
from aegra.api.deps import deps
from aegra.api.openapi import documented
from aegra.domain.errors import BadRequest, Conflict, Invalid

bp = Blueprint("thread_state", __name__)
Json = dict[str, Any]
Limit = Annotated[int, msgspec.Meta(ge=1, le=1000)]


class CheckpointRef(msgspec.Struct, omit_defaults=True):
    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None


class StateCheckpointRequest(msgspec.Struct):
    checkpoint: CheckpointRef
    subgraphs: bool = False
    select: list[str] | None = None  # accepted; the whole state is returned


class StateUpdateRequest(msgspec.Struct):
    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None  # deprecated by the SDK in favour of checkpoint


class HistoryRequest(msgspec.Struct):
    limit: Limit = 10
    before: str | CheckpointRef | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointRef | None = None
    select: list[str] | None = None


class SuperstepUpdate(msgspec.Struct):
    as_node: str
    values: dict[str, Any] | list[Any] | None = None
    command: dict[str, Any] | None = None


class Superstep(msgspec.Struct):
    updates: list[SuperstepUpdate]


def parse_id(raw: str, field: str = "thread_id") -> str:
    """Canonical UUID text; the platform refuses other thread ids with 422."""
    try:
        return str(uuid.UUID(raw))
    except (ValueError, TypeError, AttributeError):
        raise Invalid("Invalid thread ID: must be a UUID", field=field) from None


def threads() -> PgThreads:
    return PgThreads(deps().pg)


def no_graph(thread_id: str) -> BadRequest:
    return BadRequest(
        f"Thread '{thread_id}' has no assigned graph ID. This usually occurs when no runs "
        "have been made on this particular thread. This operation requires a graph ID. "
        "Please ensure a run has been made for the thread or manually update the thread "
        "metadata (by setting the 'graph_id' field) before running this operation.")


def _configurable(thread_id: str, *refs: CheckpointRef | Json | None) -> Json:
    conf: Json = {"thread_id": thread_id, "checkpoint_ns": ""}
    for ref in refs:
        fields = msgspec.structs.asdict(ref) if isinstance(ref, CheckpointRef) else ref or {}
        conf.update({k: v for k, v in fields.items() if v is not None and k != "thread_id"})
    conf["thread_id"] = thread_id  # server-pinned: the checkpointer keys on it
    return conf


def _graph_config(row: Json, conf: Json) -> Json:
    """The thread's stored config overlaid with this request's configurable."""
    base = dict(row.get("config") or {})
    base["configurable"] = {**(base.get("configurable") or {}), **conf}
    return base


async def read_state(thread_id: str, ref: CheckpointRef | Json | None,
                     subgraphs: bool) -> Json:
    row = await threads().row(thread_id)
    conf = _configurable(thread_id, ref)
    graph_id = (row["metadata"] or {}).get("graph_id")
    if not graph_id:
        return state.empty_state(thread_id, conf["checkpoint_ns"])
    config = {"configurable": conf}
    async with deps().graphs.open(graph_id, _graph_config(row, conf),
                                  access="threads.read") as graph:
        found = await state.get_state(graph, config, subgraphs)
    return found or state.empty_state(thread_id, conf["checkpoint_ns"])


async def write_supersteps(thread_id: str, graph_id: str, steps: list[Superstep]) -> Json:
    """Pre-populate a new thread (create's ``supersteps``) and refresh its cached state."""
    conf = {"thread_id": thread_id, "checkpoint_ns": "", "graph_id": graph_id}
    updates = [[msgspec.structs.asdict(u) for u in s.updates] for s in steps]
    async with deps().graphs.open(graph_id, {"configurable": conf},
                                  access="threads.update") as graph:
        checkpoint, snap = await state.bulk_update(graph, {"configurable": conf}, updates)
    await threads().set_state(thread_id, snap["values"], snap["interrupts"], snap["has_next"])
    return checkpoint


def _flag(name: str) -> bool:
    return (request.args.get(name) or "").lower() in ("true", "1", "yes")


@bp.get("/threads/<thread_id>/state")
async def get_state(thread_id: str) -> Response:
    """Current state of a thread (empty state when it has no checkpoint yet)."""
    ref = {"checkpoint_ns": request.args.get("checkpoint_ns")}
    return wire.json(await read_state(parse_id(thread_id), ref, _flag("subgraphs")))


@bp.get("/threads/<thread_id>/state/<checkpoint_id>")
async def get_state_at(thread_id: str, checkpoint_id: str) -> Response:
    """State of a thread at one checkpoint id."""
    ref = {"checkpoint_id": checkpoint_id, "checkpoint_ns": request.args.get("checkpoint_ns")}
    return wire.json(await read_state(parse_id(thread_id), ref, _flag("subgraphs")))


@bp.post("/threads/<thread_id>/state/checkpoint")
@documented(body=StateCheckpointRequest, tag="threads")
async def post_state_at(thread_id: str) -> Response:
    """State of a thread at a checkpoint object (namespace, id, map)."""
    body = await wire.body(StateCheckpointRequest)
    return wire.json(await read_state(parse_id(thread_id), body.checkpoint, body.subgraphs))


@bp.post("/threads/<thread_id>/state")
@documented(body=StateUpdateRequest, tag="threads")
async def update_state(thread_id: str) -> Response:
    """Write state as if ``as_node`` had run; returns the new checkpoint."""
    tid = parse_id(thread_id)
    body = await wire.body(StateUpdateRequest)
    row = await threads().row(tid)
    graph_id = (row["metadata"] or {}).get("graph_id")
    if not graph_id:
        raise no_graph(tid)
    if row["active_run"]:
        raise Conflict(f"Thread {tid} has in-flight runs")
    conf = _configurable(tid, {"checkpoint_id": body.checkpoint_id}, body.checkpoint)
    conf.setdefault("graph_id", graph_id)
    async with deps().graphs.open(graph_id, _graph_config(row, conf),
                                  access="threads.update") as graph:
        checkpoint, snap = await state.update_state(
            graph, {"configurable": conf}, body.values, body.as_node)
    await threads().set_state(tid, snap["values"], snap["interrupts"], snap["has_next"])
    return wire.json({"checkpoint": checkpoint, "configurable": checkpoint,
                      "checkpoint_id": checkpoint.get("checkpoint_id")})


async def _history(thread_id: str, limit: int, before: str | None, metadata: Json | None,
                   ref: CheckpointRef | Json | None) -> Response:
    row = await threads().row(thread_id)
    graph_id = (row["metadata"] or {}).get("graph_id")
    if not graph_id:
        return wire.json([])
    conf = _configurable(thread_id, ref)
    async with deps().graphs.open(graph_id, _graph_config(row, conf),
                                  access="threads.read") as graph:
        states = await state.history(graph, {"configurable": conf}, limit, before, metadata)
    return wire.json(states)


@bp.post("/threads/<thread_id>/history")
@documented(body=HistoryRequest, tag="threads")
async def post_history(thread_id: str) -> Response:
    """Past states of a thread, newest first."""
    tid = parse_id(thread_id)
    body = await wire.body(HistoryRequest)
    before = body.before.checkpoint_id if isinstance(body.before, CheckpointRef) else body.before
    return await _history(tid, body.limit, before, body.metadata, body.checkpoint)


class _HistoryQuery(msgspec.Struct):
    limit: Limit = 10
    before: str | None = None
    checkpoint_ns: str | None = None
    metadata: str | None = None


@bp.get("/threads/<thread_id>/history")
async def get_history(thread_id: str) -> Response:
    """Past states of a thread (query-string variant; ``metadata`` is JSON)."""
    tid = parse_id(thread_id)
    query = wire.decode(wire.encode(request.args.to_dict()), _HistoryQuery)
    metadata = None
    if query.metadata:
        try:
            metadata = wire.decode(query.metadata.encode(), dict[str, Any])
        except Invalid:
            raise Invalid("query parameter 'metadata' must be a JSON object",
                          field="metadata") from None
    ref = {"checkpoint_ns": query.checkpoint_ns}
    return await _history(tid, query.limit, query.before, metadata, ref)

