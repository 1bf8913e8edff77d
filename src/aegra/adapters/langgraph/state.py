"""Thread state on a compiled graph: read, history, update, copy, delete (spec §5).

``a*`` functions are asyncio-side and take the graph (with the server's checkpointer
attached) or the checkpointer itself; the Trio-side functions of the same name without
the ``a`` cross the bridge once each and map LangGraph's errors at this edge (an update
LangGraph refuses is a 400, as on the platform). Everything returned is plain JSON.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.errors import InvalidUpdateError
from langgraph.pregel import Pregel
from langgraph.types import Command, Interrupt, Send, StateSnapshot, StateUpdate
from psycopg import AsyncConnection, sql

from aegra.adapters.aio import call
from aegra.adapters.langgraph.serde import to_json
from aegra.domain.errors import BadRequest

Json = dict[str, Any]
Graph = Pregel[Any, Any, Any, Any]


# -- StateSnapshot -> ThreadState -------------------------------------------------------

def checkpoint_ref(config: RunnableConfig | None) -> Json | None:
    """A RunnableConfig as a Checkpoint object; None when it names no checkpoint."""
    conf = (config or {}).get("configurable") or {}
    if not conf.get("thread_id") or not conf.get("checkpoint_id"):
        return None
    ref = {"thread_id": conf["thread_id"], "checkpoint_ns": conf.get("checkpoint_ns") or "",
           "checkpoint_id": conf["checkpoint_id"]}
    if "checkpoint_map" in conf:
        ref["checkpoint_map"] = to_json(conf["checkpoint_map"])
    return ref


def interrupt_json(item: Interrupt) -> Json:
    out: Json = {"value": to_json(item.value), "id": item.id}
    schema = getattr(item, "response_schema", None)
    if isinstance(schema, dict):
        out["response_schema"] = to_json(schema)
    elif schema is not None and hasattr(schema, "model_json_schema"):
        out["response_schema"] = schema.model_json_schema()
    return out


def _error(err: object) -> object:
    # The platform's serializer turns exceptions into {error, message}; keep that shape.
    if isinstance(err, BaseException):
        return {"error": type(err).__name__, "message": str(err)}
    return to_json(err)


def thread_state(snap: StateSnapshot) -> Json:
    metadata = dict(snap.metadata) if snap.metadata is not None else None
    if metadata is not None and metadata.get("checkpoint_ns") == "":
        metadata.pop("checkpoint_ns")  # as the platform: the root namespace is implicit
    tasks = []
    for t in snap.tasks:
        nested = isinstance(t.state, StateSnapshot)
        tasks.append({
            "id": t.id, "name": t.name, "path": to_json(t.path), "error": _error(t.error),
            "interrupts": [interrupt_json(i) for i in t.interrupts],
            "checkpoint": (to_json(cast(Json, t.state).get("configurable"))
                           if t.state is not None and not nested else None),
            "state": thread_state(cast(StateSnapshot, t.state)) if nested else None,
            "result": to_json(t.result),
        })
    checkpoint = checkpoint_ref(snap.config)
    parent = checkpoint_ref(snap.parent_config)
    return {
        "values": to_json(snap.values), "next": list(snap.next), "tasks": tasks,
        "metadata": to_json(metadata), "created_at": snap.created_at,
        "checkpoint": checkpoint, "parent_checkpoint": parent,
        "interrupts": [interrupt_json(i) for i in snap.interrupts],
        # deprecated duplicates the platform still sends
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


def summary(snap: StateSnapshot) -> Json:
    """What the thread row caches: values, pending interrupts by task id, paused or not;
    and the whole state, which a ``state_update`` event carries."""
    return {"values": to_json(snap.values),
            "interrupts": {t.id: [interrupt_json(i) for i in t.interrupts]
                           for t in snap.tasks if t.interrupts},
            "has_next": bool(snap.next), "state": thread_state(snap)}


def to_command(cmd: Json) -> Command[Any]:
    """A wire Command (``{update, resume, goto}``) as LangGraph's, like the platform's map."""
    goto = cmd.get("goto")
    if goto is not None and not isinstance(goto, list):
        goto = [goto]
    update = cmd.get("update")
    if isinstance(update, list) and all(
            isinstance(t, list | tuple) and len(t) == 2 and isinstance(t[0], str) for t in update):
        update = [tuple(t) for t in update]
    return Command(update=update, resume=cmd.get("resume"),
                   goto=[g if isinstance(g, str) else Send(g["node"], g.get("input"))
                         for g in goto] if goto else ())


# -- asyncio side -----------------------------------------------------------------------

async def aget_state(graph: Graph, config: Json, subgraphs: bool = False) -> Json | None:
    """ThreadState, or None when the thread has no checkpoint at all."""
    snap = await graph.aget_state(_rc(config), subgraphs=subgraphs)
    if snap.created_at is None and snap.metadata is None:
        # An unknown checkpoint id still answers with that id, as the platform does.
        return thread_state(snap) if config["configurable"].get("checkpoint_id") else None
    return thread_state(snap)


def _rc(config: Json) -> RunnableConfig:
    return cast(RunnableConfig, config)


def _root(config: Json) -> Json:
    """The thread's latest root checkpoint: what the thread row caches."""
    return {"configurable": {"thread_id": config["configurable"]["thread_id"],
                             "checkpoint_ns": ""}}


async def ahistory(graph: Graph, config: Json, limit: int, before: str | None,
                   metadata: Json | None) -> list[Json]:
    before_config = _rc({"configurable": {"checkpoint_id": before}}) if before else None
    return [thread_state(s) async for s in graph.aget_state_history(
        _rc(config), filter=metadata or None, before=before_config, limit=limit)]


async def aupdate_state(graph: Graph, config: Json, values: object,
                        as_node: str | None) -> tuple[Json, Json]:
    """(new checkpoint's configurable, thread-row summary) in one crossing."""
    new_config = await graph.aupdate_state(_rc(config), values, as_node=as_node)
    snap = await graph.aget_state(_rc(_root(config)))
    return to_json(new_config["configurable"]), summary(snap)


async def abulk_update(graph: Graph, config: Json,
                       supersteps: Sequence[Sequence[Json]]) -> tuple[Json, Json]:
    """Apply ``supersteps`` (lists of ``{values, command, as_node}``), like create's."""
    # StateUpdate's annotation says dict, but LangGraph applies a Command there too.
    steps = [[StateUpdate(cast(Json, to_command(u["command"])) if u.get("command")
                          else u.get("values"), u.get("as_node")) for u in step]
             for step in supersteps]
    new_config = await graph.abulk_update_state(_rc(config), steps)
    snap = await graph.aget_state(_rc(_root(config)))
    return to_json(new_config["configurable"]), summary(snap)


@asynccontextmanager
async def _connection(saver: AsyncPostgresSaver) -> AsyncIterator[AsyncConnection[Any]]:
    conn = saver.conn
    if isinstance(conn, AsyncConnection):
        yield conn
    else:
        async with conn.connection() as c:
            yield c


_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


async def acopy_checkpoints(saver: AsyncPostgresSaver, source: str, target: str) -> None:
    """Copy every checkpoint, blob and pending write of ``source`` to ``target``.

    AsyncPostgresSaver has no ``acopy_thread``; copying rows in one transaction keeps the
    whole parent chain (DeltaChannel needs it). Columns are read from the catalog so a
    newer checkpointer schema is copied whole; only ``thread_id`` (and the thread id in
    checkpoint metadata, which the platform rewrites too) change.
    """
    async with _connection(saver) as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT table_name::text AS t, column_name::text AS c "
            "FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ANY(%s) ORDER BY ordinal_position", (list(_TABLES),))
        columns: dict[str, list[str]] = {}
        for row in await cur.fetchall():
            t, c = (row["t"], row["c"]) if isinstance(row, dict) else row
            columns.setdefault(t, []).append(c)
        for table in _TABLES:
            names = [sql.Identifier(c) for c in columns.get(table, [])]
            exprs = [sql.SQL("%(target)s") if c == "thread_id" else
                     sql.SQL("CASE WHEN metadata ? 'thread_id' THEN jsonb_set(metadata, "
                             "ARRAY['thread_id'], to_jsonb(%(target)s::text)) ELSE metadata END")
                     if (table, c) == ("checkpoints", "metadata") else sql.Identifier(c)
                     for c in columns.get(table, [])]
            await conn.execute(sql.SQL(
                "INSERT INTO {} ({}) SELECT {} FROM {} WHERE thread_id = %(source)s "
                "ON CONFLICT DO NOTHING").format(
                    sql.Identifier(table), sql.SQL(", ").join(names),
                    sql.SQL(", ").join(exprs), sql.Identifier(table)),
                {"source": source, "target": target})


async def adelete_checkpoints(saver: AsyncPostgresSaver, thread_ids: Sequence[str]) -> None:
    for thread_id in thread_ids:
        await saver.adelete_thread(thread_id)


async def aprune_keep_latest(saver: AsyncPostgresSaver, thread_ids: Sequence[str]) -> None:
    await saver.aprune(list(thread_ids), strategy="keep_latest")


# -- Trio side: one crossing each, LangGraph errors mapped here --------------------------

_REFUSED = (InvalidUpdateError, ValueError, KeyError, NotImplementedError)


def _refused(exc: BaseException) -> BadRequest:
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return BadRequest(str(message) or type(exc).__name__)


async def get_state(graph: Graph, config: Json, subgraphs: bool = False) -> Json | None:
    try:
        return await call(aget_state, graph, config, subgraphs)
    except _REFUSED as exc:
        raise _refused(exc) from exc


async def history(graph: Graph, config: Json, limit: int, before: str | None,
                  metadata: Json | None) -> list[Json]:
    try:
        return await call(ahistory, graph, config, limit, before, metadata)
    except _REFUSED as exc:
        raise _refused(exc) from exc


async def update_state(graph: Graph, config: Json, values: object,
                       as_node: str | None) -> tuple[Json, Json]:
    try:
        return await call(aupdate_state, graph, config, values, as_node)
    except _REFUSED as exc:
        raise _refused(exc) from exc


async def bulk_update(graph: Graph, config: Json,
                      supersteps: Sequence[Sequence[Json]]) -> tuple[Json, Json]:
    try:
        return await call(abulk_update, graph, config, supersteps)
    except _REFUSED as exc:
        raise _refused(exc) from exc


async def copy_checkpoints(saver: AsyncPostgresSaver, source: str, target: str) -> None:
    await call(acopy_checkpoints, saver, source, target)


async def delete_checkpoints(saver: AsyncPostgresSaver, thread_ids: Sequence[str]) -> None:
    await call(adelete_checkpoints, saver, thread_ids)


async def prune_keep_latest(saver: AsyncPostgresSaver, thread_ids: Sequence[str]) -> None:
    try:
        await call(aprune_keep_latest, saver, thread_ids)
    except _REFUSED as exc:  # e.g. keep_latest refused for a DeltaChannel thread
        raise _refused(exc) from exc
