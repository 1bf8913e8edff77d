"""Threads and their state: create, read, update, delete, search, count, copy, prune,
state, history.

Every method takes the caller first; authorization runs here and its filter is applied
inside the store's query (spec/auth.md items 10-11): a thread the filter hides is
NotFound, exactly like a missing one. The actions: create, read (get, state, history),
update (patch, state update), delete, search (search, count); copy is read(source) then
create(new); prune is delete. Values are the platform's shapes and the handler may edit
them: a created thread stores the metadata the handler stamped.

Create with an existing id is a 409 whoever owns it, ``if_exists=do_nothing`` included:
create cannot hide that an id is taken, but it never hands someone else's thread over.
A half-made thread (supersteps refused) or copy (row insert failed) is undone, bounded
even when the request is cancelled.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import trio

from aegra.domain.auth import Caller, Filter
from aegra.domain.errors import Conflict, NotFound
from aegra.domain.ports import Authorizer, EventBroker
from aegra.domain.resource_ports import ActiveRuns, RunCanceller, ThreadStates, ThreadStore
from aegra.domain.thread_reports import StorageUnreported, ThreadReports
from aegra.domain.threads import (
    THREAD_FIELDS,
    check_extract,
    configurable,
    empty_state,
    extract,
    graph_config,
    no_graph,
    ttl_info,
    uuid7,
)

Json = dict[str, Any]
Steps = list[list[Json]]  # supersteps of {values, command, as_node} updates
UNDO_S = 10  # bound on removing a half-made thread, even when we are cancelled


class ThreadService:
    def __init__(self, *, store: ThreadStore, states: ThreadStates, auth: Authorizer,
                 runs: RunCanceller, active: ActiveRuns,
                 events: EventBroker | None = None) -> None:
        self.store = store
        self.states = states
        self.auth = auth
        self.runs = runs
        self.active = active
        self.events = events  # state_update events to thread join streams
        # GET /threads/{id}/storage; wired by the composition root (None: 501).
        self.reports: ThreadReports | None = None

    async def _allow(self, caller: Caller, action: str, value: Json) -> Filter | None:
        return await self.auth.authorize(caller, "threads", action, value)

    # -- the thread row ---------------------------------------------------------------------
    async def create(self, caller: Caller, *, thread_id: str | None, metadata: Json | None,
                     if_exists: str | None, ttl: Json | None,
                     supersteps: Steps | None = None) -> Json:
        """A thread, optionally pre-populated by ``supersteps``: all or nothing."""
        tid = thread_id or uuid7()
        value: Json = {"thread_id": tid, "metadata": dict(metadata or {}),
                       "if_exists": if_exists or "raise", "ttl": ttl}
        flt = await self._allow(caller, "create", value)
        stamped = value.get("metadata") or {}
        graph_id = stamped.get("graph_id")
        if supersteps and not graph_id:
            raise no_graph(tid)  # refused before anything is written
        # ``flt`` hides someone else's thread from ``do_nothing``: a 409, as for ``raise``.
        thread, created = await self.store.create(tid, stamped, ttl_info(ttl),
                                                  if_exists or "raise", where=flt)
        if supersteps and created:
            try:
                await self.write_supersteps(tid, str(graph_id), supersteps)
            except BaseException:
                with trio.move_on_after(UNDO_S, shield=True):
                    await self.store.delete([tid])
                raise
            thread = await self.store.get(tid)
        return thread

    async def write_supersteps(self, thread_id: str, graph_id: str, steps: Steps) -> Json:
        """Pre-populate a new thread (create's ``supersteps``) and refresh its cached state.
        Authorized by the create that calls it."""
        config: Json = {"configurable": {"thread_id": thread_id, "checkpoint_ns": "",
                                         "graph_id": graph_id}}
        checkpoint, snap = await self.states.bulk_update(graph_id, config, open_config=config,
                                                         supersteps=steps)
        await self.store.set_state(thread_id, snap["values"], snap["interrupts"],
                                   snap["has_next"])
        return checkpoint

    async def get(self, caller: Caller, thread_id: str, *, include_ttl: bool = False) -> Json:
        flt = await self._allow(caller, "read", {"thread_id": thread_id})
        return await self.store.get(thread_id, include_ttl=include_ttl, where=flt)

    async def storage(self, caller: Caller, thread_id: str) -> Json:
        """Bytes the thread's checkpoints take (``read``: a hidden thread is NotFound)."""
        flt = await self._allow(caller, "read", {"thread_id": thread_id})
        if self.reports is None:
            raise StorageUnreported("Checkpoint storage is only reported for the built-in "
                                    "checkpointer.")
        return await self.reports.storage(thread_id, where=flt)

    async def patch(self, caller: Caller, thread_id: str, *, metadata: Json | None,
                    ttl: Json | None) -> Json:
        """Merge metadata (as the handler left it) into the thread's."""
        value: Json = {"thread_id": thread_id, "metadata": dict(metadata or {})}
        flt = await self._allow(caller, "update", value)
        return await self.store.patch(thread_id, value.get("metadata") or {}, ttl_info(ttl),
                                      where=flt)

    async def delete(self, caller: Caller, thread_id: str) -> None:
        """Delete a thread, its checkpoints, runs and crons; its active runs stop first
        (spec §2.2), then their rows go with the thread (cascade)."""
        flt = await self._allow(caller, "delete", {"thread_id": thread_id})
        if not await self.store.existing([thread_id], where=flt):
            raise NotFound(f"Thread with ID {thread_id} not found")
        active = await self.active.inflight(thread_id=thread_id)
        if active:
            await self.runs.cancel(active, "interrupt")
        await self.store.delete([thread_id], where=flt)

    async def search(self, caller: Caller, *, metadata: Json | None, values: Json | None,
                     status: str | None, ids: list[str] | None, limit: int, offset: int,
                     sort_by: str | None = None, sort_order: str | None = None,
                     select: list[str] | None = None, extract_paths: dict[str, str] | None = None
                     ) -> tuple[list[Json], bool]:
        """(page, whether another page follows); only threads the caller may see."""
        extra = check_extract(extract_paths, THREAD_FIELDS) if extract_paths else []
        columns = list(dict.fromkeys([*select, *extra])) if select else None
        value: Json = {"metadata": dict(metadata or {}), "values": values, "status": status,
                       "limit": limit, "offset": offset, "ids": ids}
        flt = await self._allow(caller, "search", value)
        page, more = await self.store.search(
            metadata=value.get("metadata"), values=values, status=status, ids=ids,
            limit=limit, offset=offset, sort_by=sort_by, sort_order=sort_order,
            columns=columns, where=flt)
        for thread in page:
            if extract_paths:
                thread["extracted"] = {a: extract(thread, p) for a, p in extract_paths.items()}
            if select:
                for key in set(extra) - set(select):
                    thread.pop(key, None)
        return page, more

    async def count(self, caller: Caller, *, metadata: Json | None, values: Json | None,
                    status: str | None) -> int:
        value: Json = {"metadata": dict(metadata or {}), "values": values, "status": status}
        flt = await self._allow(caller, "search", value)
        return await self.store.count(metadata=value.get("metadata"), values=values,
                                      status=status, where=flt)

    async def copy(self, caller: Caller, thread_id: str) -> Json:
        """A new thread with the source's metadata and a copy of every checkpoint."""
        readable = await self._allow(caller, "read", {"thread_id": thread_id})
        try:
            row = await self.store.row(thread_id, where=readable)
        except NotFound:  # the platform answers 409 here; hidden looks the same
            raise Conflict(f"Thread with ID {thread_id} not found; nothing to copy") from None
        new_id = str(uuid.uuid4())
        source = dict(row["metadata"] or {})
        value: Json = {"thread_id": new_id, "metadata": dict(source), "if_exists": "raise"}
        await self._allow(caller, "create", value)  # a fresh uuid4: nothing to filter
        stamped = value.get("metadata") or {}
        await self.states.copy_checkpoints(thread_id, new_id)
        try:
            return await self.store.copy(thread_id, new_id, where=readable,
                                         metadata=stamped if stamped != source else None)
        except BaseException:
            with trio.move_on_after(UNDO_S, shield=True):
                await self.states.delete_checkpoints([new_id])
            raise

    async def prune(self, caller: Caller, thread_ids: list[str], strategy: str) -> int:
        """Delete threads, or (``keep_latest``) only their older checkpoints; unknown and
        hidden ids are skipped. Returns how many were pruned."""
        flt = await self._allow(caller, "delete", {"thread_ids": thread_ids,
                                                   "strategy": strategy})
        found = await self.store.existing(thread_ids, where=flt) if thread_ids else []
        if not found:
            return 0
        if strategy == "keep_latest":
            await self.states.prune_keep_latest(found)
            return len(found)
        return len(await self.store.delete(found, where=flt))

    # -- state and history ----------------------------------------------------------------
    async def read_state(self, caller: Caller, thread_id: str, ref: Json | None, *,
                         subgraphs: bool = False) -> Json:
        """State now or at a checkpoint (``ref``); the empty state without one."""
        flt = await self._allow(caller, "read", {"thread_id": thread_id})
        row = await self.store.row(thread_id, where=flt)
        conf = configurable(thread_id, ref)
        graph_id = (row["metadata"] or {}).get("graph_id")
        if not graph_id:
            return empty_state(thread_id, conf["checkpoint_ns"])
        found = await self.states.get_state(graph_id, {"configurable": conf},
                                            open_config=graph_config(row, conf),
                                            subgraphs=subgraphs)
        return found or empty_state(thread_id, conf["checkpoint_ns"])

    async def update_state(self, caller: Caller, thread_id: str, *, values: object,
                           as_node: str | None, checkpoint: Json | None = None,
                           checkpoint_id: str | None = None) -> Json:
        """Write state as if ``as_node`` had run (``checkpoint`` wins over the deprecated
        ``checkpoint_id``); the new checkpoint."""
        flt = await self._allow(caller, "update", {"thread_id": thread_id, "metadata": {}})
        row = await self.store.row(thread_id, where=flt)
        graph_id = (row["metadata"] or {}).get("graph_id")
        if not graph_id:
            raise no_graph(thread_id)
        if row["active_run"]:
            raise Conflict(f"Thread {thread_id} has in-flight runs")
        conf = configurable(thread_id, {"checkpoint_id": checkpoint_id}, checkpoint)
        conf.setdefault("graph_id", graph_id)
        written, snap = await self.states.update_state(
            graph_id, {"configurable": conf}, open_config=graph_config(row, conf),
            values=values, as_node=as_node)
        await self.store.set_state(thread_id, snap["values"], snap["interrupts"],
                                   snap["has_next"], where=flt)
        if self.events is not None:
            # Streams joined on the thread (any instance) see the new state, as on the
            # platform: {"state": ThreadState, "thread_id": ...}.
            await self.events.publish_thread(thread_id, "state_update", msgspec.json.encode(
                {"state": snap.get("state"), "thread_id": thread_id}))
        return {"checkpoint": written, "configurable": written,
                "checkpoint_id": written.get("checkpoint_id")}

    async def history(self, caller: Caller, thread_id: str, *, limit: int,
                      before: str | None, metadata: Json | None, ref: Json | None
                      ) -> list[Json]:
        """Past states, newest first; none for a thread without a graph."""
        flt = await self._allow(caller, "read", {"thread_id": thread_id})
        row = await self.store.row(thread_id, where=flt)
        graph_id = (row["metadata"] or {}).get("graph_id")
        if not graph_id:
            return []
        conf = configurable(thread_id, ref)
        return await self.states.history(graph_id, {"configurable": conf},
                                         open_config=graph_config(row, conf), limit=limit,
                                         before=before, metadata=metadata)
