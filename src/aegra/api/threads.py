"""Threads: create, get, update, delete, search, count, copy, prune (spec §2.2).

Shapes and status codes follow LangGraph Platform (the ``langgraph dev`` oracle): thread
ids are UUIDs (422 otherwise), create answers 200, delete 204, a duplicate id 409, and
``threads.copy`` of an unknown id 409 as the platform does. Handlers decode, call one
``services().threads`` method with the caller, and encode; numbers from the client are
bounded here (422 naming the field).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from quart import Blueprint, Response, request

from aegra.api import thread_state, wire
from aegra.api.auth import caller
from aegra.api.deps import services
from aegra.api.openapi import documented
from aegra.api.thread_state import Superstep, parse_id
from aegra.domain.errors import BadRequest
from aegra.domain.threads import MAX_OFFSET, MAX_TTL_MINUTES

bp = Blueprint("threads", __name__)
bp.register_blueprint(thread_state.bp)

Status = Literal["idle", "busy", "interrupted", "error"]
SelectField = Literal["thread_id", "created_at", "updated_at", "state_updated_at", "metadata",
                      "config", "context", "status", "values", "interrupts", "error"]
SortBy = Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"]
# Minutes: finite, positive, at most ten years (a bigger one overflowed the expiry date).
Minutes = Annotated[float, msgspec.Meta(gt=0, le=MAX_TTL_MINUTES)]
Offset = Annotated[int, msgspec.Meta(ge=0, le=MAX_OFFSET)]


class TTL(msgspec.Struct):
    ttl: Minutes | None = None
    strategy: Literal["delete", "keep_latest"] = "delete"


class ThreadCreate(msgspec.Struct):
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None
    supersteps: list[Superstep] | None = None
    ttl: TTL | Minutes | None = None


class ThreadPatch(msgspec.Struct):
    metadata: dict[str, Any] | None = None
    ttl: TTL | Minutes | None = None


class ThreadSearch(msgspec.Struct):
    ids: list[str] | None = None
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Status | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    offset: Offset = 0
    sort_by: SortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[SelectField] | None = None
    extract: dict[str, str] | None = None


class ThreadCount(msgspec.Struct):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Status | None = None


class ThreadPrune(msgspec.Struct):
    thread_ids: list[str]
    strategy: Literal["delete", "keep_latest"] = "delete"


def _ttl(ttl: TTL | float | None) -> dict[str, Any] | None:
    """The platform's ThreadTTL shape (``{ttl: minutes, strategy}``), or None."""
    if ttl is None:
        return None
    if isinstance(ttl, TTL):
        return msgspec.structs.asdict(ttl)
    return {"ttl": ttl, "strategy": "delete"}


@bp.post("/threads")
@documented(body=ThreadCreate, tag="threads")
async def create_thread() -> Response:
    """Create a thread, optionally pre-populated by ``supersteps`` of state updates."""
    body = await wire.body(ThreadCreate)
    steps = ([[msgspec.structs.asdict(u) for u in s.updates] for s in body.supersteps]
             if body.supersteps else None)
    return wire.json(await services().threads.create(
        caller(), thread_id=parse_id(body.thread_id) if body.thread_id else None,
        metadata=body.metadata, if_exists=body.if_exists, ttl=_ttl(body.ttl),
        supersteps=steps))


@bp.get("/threads/<thread_id>")
async def get_thread(thread_id: str) -> Response:
    """One thread; ``include=ttl`` adds its TTL."""
    include = {p.strip() for p in (request.args.get("include") or "").split(",")}
    return wire.json(await services().threads.get(
        caller(), parse_id(thread_id), include_ttl="ttl" in include))


@bp.get("/threads/<thread_id>/storage")
async def get_thread_storage(thread_id: str) -> Response:
    """Bytes the thread's checkpoints occupy, as stored: checkpoints, channel values (per
    channel) and pending writes (docs/thread-storage.md)."""
    return wire.json(await services().threads.storage(caller(), parse_id(thread_id)))


@bp.patch("/threads/<thread_id>")
@documented(body=ThreadPatch, tag="threads")
async def patch_thread(thread_id: str) -> Response:
    """Merge metadata into a thread; ``Prefer: return=minimal`` answers 204."""
    tid = parse_id(thread_id)
    body = await wire.body(ThreadPatch)
    thread = await services().threads.patch(caller(), tid, metadata=body.metadata,
                                            ttl=_ttl(body.ttl))
    if request.headers.get("Prefer") == "return=minimal":
        return Response(b"", status=204)
    return wire.json(thread)


@bp.delete("/threads/<thread_id>")
async def delete_thread(thread_id: str) -> Response:
    """Delete a thread, its checkpoints, runs and crons (active runs stop first)."""
    await services().threads.delete(caller(), parse_id(thread_id))
    return Response(b"", status=204)


@bp.post("/threads/search")
@documented(body=ThreadSearch, tag="threads")
async def search_threads() -> Response:
    """Threads filtered by metadata/values containment, status and ids; paginated."""
    body = await wire.body(ThreadSearch)
    ids = None
    if body.ids:
        ids = []
        for raw in body.ids:
            try:
                ids.append(str(uuid.UUID(raw)))
            except ValueError:  # the platform answers 400 here, not 422
                raise BadRequest(f"Invalid thread ID {raw}") from None
    page, more = await services().threads.search(
        caller(), metadata=body.metadata, values=body.values, status=body.status, ids=ids,
        limit=body.limit, offset=body.offset, sort_by=body.sort_by,
        sort_order=body.sort_order, select=list(body.select) if body.select else None,
        extract_paths=body.extract)
    end = body.offset + body.limit
    headers = ({"X-Pagination-Next": str(end), "X-Pagination-Total": str(end + 1)} if more
               else {"X-Pagination-Total": str(body.offset + len(page))})
    return wire.json(page, headers=headers)


@bp.post("/threads/count")
@documented(body=ThreadCount, tag="threads")
async def count_threads() -> Response:
    """How many threads match (a bare integer)."""
    body = await wire.body(ThreadCount)
    return wire.json(await services().threads.count(
        caller(), metadata=body.metadata, values=body.values, status=body.status))


@bp.post("/threads/<thread_id>/copy")
async def copy_thread(thread_id: str) -> Response:
    """A new thread with the same metadata and a copy of every checkpoint."""
    return wire.json(await services().threads.copy(caller(), parse_id(thread_id)))


@bp.post("/threads/prune")
@documented(body=ThreadPrune, tag="threads")
async def prune_threads() -> Response:
    """Delete threads, or (``keep_latest``) only their older checkpoints."""
    body = await wire.body(ThreadPrune)
    ids = [parse_id(t, "thread_ids") for t in body.thread_ids]
    return wire.json({"pruned_count": await services().threads.prune(caller(), ids,
                                                                     body.strategy)})
