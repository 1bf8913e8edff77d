"""Thread state endpoints: current state, state at a checkpoint, update, history (spec §5).

The graph comes from the thread's ``metadata.graph_id``; a thread without one has the
empty state (200) and no history, and refuses updates with 400 as the platform does.
``thread_id`` is always the path's: a ``thread_id`` inside a client's checkpoint object
never reaches the checkpointer (spec §10.21). Mounted under the ``threads`` blueprint;
the use cases (and their authorization) are ``services().threads``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from quart import Blueprint, Response, request

from aegra.api import wire
from aegra.api.auth import caller
from aegra.api.deps import services
from aegra.api.openapi import documented
from aegra.domain.errors import Invalid

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


class BeforeRef(CheckpointRef, omit_defaults=True):
    """``before`` as a checkpoint object (Python SDK) or a RunnableConfig wrapping one
    (the JS SDK's ``{configurable: {checkpoint_id}}``, which the platform reads)."""

    configurable: CheckpointRef | None = None

    def checkpoint(self) -> str | None:
        inner = self.configurable
        return inner.checkpoint_id if inner is not None else self.checkpoint_id


class HistoryRequest(msgspec.Struct):
    limit: Limit = 1  # the platform's when the body has none (both SDKs send 10)
    before: str | BeforeRef | None = None
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


def _ref(ref: CheckpointRef | None) -> Json | None:
    return msgspec.structs.asdict(ref) if ref is not None else None


def _flag(name: str) -> bool:
    return (request.args.get(name) or "").lower() in ("true", "1", "yes")


@bp.get("/threads/<thread_id>/state")
async def get_state(thread_id: str) -> Response:
    """Current state of a thread (empty state when it has no checkpoint yet)."""
    ref = {"checkpoint_ns": request.args.get("checkpoint_ns")}
    return wire.json(await services().threads.read_state(
        caller(), parse_id(thread_id), ref, subgraphs=_flag("subgraphs")))


@bp.get("/threads/<thread_id>/state/<checkpoint_id>")
async def get_state_at(thread_id: str, checkpoint_id: str) -> Response:
    """State of a thread at one checkpoint id."""
    ref = {"checkpoint_id": checkpoint_id, "checkpoint_ns": request.args.get("checkpoint_ns")}
    return wire.json(await services().threads.read_state(
        caller(), parse_id(thread_id), ref, subgraphs=_flag("subgraphs")))


@bp.post("/threads/<thread_id>/state/checkpoint")
@documented(body=StateCheckpointRequest, tag="threads")
async def post_state_at(thread_id: str) -> Response:
    """State of a thread at a checkpoint object (namespace, id, map)."""
    tid = parse_id(thread_id)
    body = await wire.body(StateCheckpointRequest)
    return wire.json(await services().threads.read_state(
        caller(), tid, _ref(body.checkpoint), subgraphs=body.subgraphs))


@bp.post("/threads/<thread_id>/state")
@documented(body=StateUpdateRequest, tag="threads")
async def update_state(thread_id: str) -> Response:
    """Write state as if ``as_node`` had run; returns the new checkpoint."""
    tid = parse_id(thread_id)
    body = await wire.body(StateUpdateRequest)
    return wire.json(await services().threads.update_state(
        caller(), tid, values=body.values, as_node=body.as_node,
        checkpoint=_ref(body.checkpoint), checkpoint_id=body.checkpoint_id))


@bp.post("/threads/<thread_id>/history")
@documented(body=HistoryRequest, tag="threads")
async def post_history(thread_id: str) -> Response:
    """Past states of a thread, newest first."""
    tid = parse_id(thread_id)
    body = await wire.body(HistoryRequest)
    before = body.before.checkpoint() if isinstance(body.before, BeforeRef) else body.before
    return wire.json(await services().threads.history(
        caller(), tid, limit=body.limit, before=before, metadata=body.metadata,
        ref=_ref(body.checkpoint)))


class _HistoryQuery(msgspec.Struct):
    limit: Limit = 1  # as the platform's
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
    return wire.json(await services().threads.history(
        caller(), tid, limit=query.limit, before=query.before, metadata=metadata,
        ref={"checkpoint_ns": query.checkpoint_ns}))
