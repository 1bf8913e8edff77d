"""Threads: create, get, update, delete, search, count, copy, prune (spec §2.2).

Shapes and status codes follow LangGraph Platform (the ``langgraph dev`` oracle): thread
ids are UUIDs (422 otherwise), create answers 200, delete 204, a duplicate id 409, and
``threads.copy`` of an unknown id 409 as the platform does. Checkpoints are deleted
before the row, so a failure part-way leaves a thread that can be deleted again rather
than orphaned checkpoints a later thread with the same id would inherit.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from typing import Annotated, Any, Literal, get_args

import msgspec
import trio
from quart import Blueprint, Response, request

from aegra.adapters.langgraph import state
from aegra.adapters.postgres.threads import ttl_info
from aegra.api import thread_state, wire
from aegra.api.deps import deps
from aegra.api.openapi import documented
from aegra.api.thread_state import Superstep, no_graph, parse_id, threads
from aegra.domain.errors import BadRequest, Conflict, Invalid, NotFound

bp = Blueprint("threads", __name__)
bp.register_blueprint(thread_state.bp)

Status = Literal["idle", "busy", "interrupted", "error"]
SelectField = Literal["thread_id", "created_at", "updated_at", "state_updated_at", "metadata",
                      "config", "context", "status", "values", "interrupts", "error"]
SortBy = Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"]


class TTL(msgspec.Struct):
    ttl: float | None = None
    strategy: Literal["delete", "keep_latest"] = "delete"


class ThreadCreate(msgspec.Struct):
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None
    supersteps: list[Superstep] | None = None
    ttl: TTL | float | None = None


class ThreadPatch(msgspec.Struct):
    metadata: dict[str, Any] | None = None
    ttl: TTL | float | None = None


class ThreadSearch(msgspec.Struct):
    ids: list[str] | None = None
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Status | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0
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


def uuid7() -> str:
    """Time-ordered UUID (RFC 9562 v7), as the platform gives new threads."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = ((ms & (1 << 48) - 1) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
             | 0b10 << 62 | rand & (1 << 62) - 1)
    return str(uuid.UUID(int=value))


def _ttl(ttl: TTL | float | None) -> dict[str, Any] | None:
    return ttl_info({"ttl": ttl} if isinstance(ttl, int | float) else
                    msgspec.structs.asdict(ttl) if ttl is not None else None)


def _saver() -> Any:
    return deps().langgraph.checkpointer


async def _undo_create(thread_id: str) -> None:
    """Best-effort removal of a half-made thread, bounded even when we are cancelled."""
    with trio.move_on_after(10, shield=True):
        await threads().delete([thread_id])


@bp.post("/threads")
@documented(body=ThreadCreate, tag="threads")
async def create_thread() -> Response:
    """Create a thread, optionally pre-populated by ``supersteps`` of state updates."""
    body = await wire.body(ThreadCreate)
    tid = parse_id(body.thread_id) if body.thread_id else uuid7()
    metadata = body.metadata or {}
    graph_id = metadata.get("graph_id")
    if body.supersteps and not graph_id:
        raise no_graph(tid)  # refused before anything is written
    thread, created = await threads().create(tid, metadata, _ttl(body.ttl),
                                             body.if_exists or "raise")
    if body.supersteps and created:
        try:
            await thread_state.write_supersteps(tid, str(graph_id), body.supersteps)
        except BaseException:
            # All or nothing: a thread whose pre-population failed is not left behind.
            await _undo_create(tid)
            raise
        thread = await threads().get(tid)
    return wire.json(thread)


@bp.get("/threads/<thread_id>")
async def get_thread(thread_id: str) -> Response:
    """One thread; ``include=ttl`` adds its TTL."""
    include = {p.strip() for p in (request.args.get("include") or "").split(",")}
    return wire.json(await threads().get(parse_id(thread_id), include_ttl="ttl" in include))


@bp.patch("/threads/<thread_id>")
@documented(body=ThreadPatch, tag="threads")
async def patch_thread(thread_id: str) -> Response:
    """Merge metadata into a thread; ``Prefer: return=minimal`` answers 204."""
    tid = parse_id(thread_id)
    body = await wire.body(ThreadPatch)
    thread = await threads().patch(tid, body.metadata, _ttl(body.ttl))
    if request.headers.get("Prefer") == "return=minimal":
        return Response(b"", status=204)
    return wire.json(thread)


@bp.delete("/threads/<thread_id>")
async def delete_thread(thread_id: str) -> Response:
    """Delete a thread, its checkpoints, runs and crons."""
    tid = parse_id(thread_id)
    if not await threads().existing([tid]):
        raise NotFound(f"Thread with ID {tid} not found")
    # Active runs stop first (spec §2.2); their rows then go with the thread (cascade).
    runs = deps().services.runs
    if True:
        active = await runs.runs.inflight(thread_id=tid)
        if active:
            await runs.cancel(active, "interrupt")
    await threads().delete([tid])  # with its checkpoints
    return Response(b"", status=204)


_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PATH = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")
_EXTRACTABLE = ("values", "metadata", "config", "interrupts")


def _check_extract(extract: dict[str, str]) -> list[str]:
    """Validate ``extract`` like the platform (422s); returns the columns it reads."""
    if len(extract) > 10:
        raise Invalid(f"Maximum of 10 extract paths allowed, got {len(extract)}",
                      field="extract")
    roots = []
    for alias, path in extract.items():
        if not _ALIAS.match(alias) or alias in get_args(SelectField):
            raise Invalid(f"Extract key '{alias}' must be an identifier and not a thread "
                          "field name", field=f"extract.{alias}")
        root = path.split(".")[0].split("[")[0]
        if root not in _EXTRACTABLE:
            raise Invalid(f"Extract path '{path}' must start with one of: "
                          f"{', '.join(_EXTRACTABLE)}", field=f"extract.{alias}")
        roots.append(root)
    return roots


def _extract(thread: dict[str, Any], path: str) -> Any:
    current: Any = thread
    for key, index in (m.groups() for m in _PATH.finditer(path)):
        if index is not None:
            if not isinstance(current, list) or not -len(current) <= int(index) < len(current):
                return None
            current = current[int(index)]
        elif isinstance(current, dict) and not key.startswith("_"):
            current = current.get(key)
        else:
            return None
    return current


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
    extra = _check_extract(body.extract) if body.extract else []
    columns = list(dict.fromkeys([*body.select, *extra])) if body.select else None
    page, more = await threads().search(
        metadata=body.metadata, values=body.values, status=body.status, ids=ids,
        limit=body.limit, offset=body.offset, sort_by=body.sort_by,
        sort_order=body.sort_order, columns=columns)
    for thread in page:
        if body.extract:
            thread["extracted"] = {a: _extract(thread, p) for a, p in body.extract.items()}
        if body.select:
            for key in set(extra) - set(body.select):
                thread.pop(key, None)
    end = body.offset + body.limit
    headers = ({"X-Pagination-Next": str(end), "X-Pagination-Total": str(end + 1)} if more
               else {"X-Pagination-Total": str(body.offset + len(page))})
    return wire.json(page, headers=headers)


@bp.post("/threads/count")
@documented(body=ThreadCount, tag="threads")
async def count_threads() -> Response:
    """How many threads match (a bare integer)."""
    body = await wire.body(ThreadCount)
    return wire.json(await threads().count(metadata=body.metadata, values=body.values,
                                           status=body.status))


@bp.post("/threads/<thread_id>/copy")
async def copy_thread(thread_id: str) -> Response:
    """A new thread with the same metadata and a copy of every checkpoint."""
    tid = parse_id(thread_id)
    try:
        await threads().row(tid)
    except NotFound:
        raise Conflict(f"Thread with ID {tid} not found; nothing to copy") from None
    new_id = str(uuid.uuid4())
    await state.copy_checkpoints(_saver(), tid, new_id)
    try:
        thread = await threads().copy(tid, new_id)
    except BaseException:
        with trio.move_on_after(10, shield=True):
            await state.delete_checkpoints(_saver(), [new_id])
        raise
    return wire.json(thread)


@bp.post("/threads/prune")
@documented(body=ThreadPrune, tag="threads")
async def prune_threads() -> Response:
    """Delete threads, or (``keep_latest``) only their older checkpoints."""
    body = await wire.body(ThreadPrune)
    ids = [parse_id(t, "thread_ids") for t in body.thread_ids]
    found = await threads().existing(ids) if ids else []
    if not found:
        return wire.json({"pruned_count": 0})
    if body.strategy == "keep_latest":
        await state.prune_keep_latest(_saver(), found)
        return wire.json({"pruned_count": len(found)})
    return wire.json({"pruned_count": len(await threads().delete(found))})
