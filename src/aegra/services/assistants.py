"""Assistants: create, read, update, delete, search, count, versions, graph introspection.

Every method takes the caller first; authorization runs here (resource ``assistants``,
spec/auth.md item 10) and its filter is applied inside the store's query, so an
assistant the caller may not see is NotFound, exactly like a missing one. Each ``value``
has the shape of the platform's ``Auth.types.Assistants*`` payload, ``assistant_id`` as
a UUID and ``metadata`` always a dict: what a handler stamps there is what gets stored
(create, patch) or searched for (search, count), as on the platform, where the value
holds the very dict the query then uses.

System assistants (``metadata.created_by == "system"``, one per graph) get no exception
here: like langgraph-runtime-inmem (``Assistants.get``/``search`` apply the filter to
every row), a caller whose read/search filter excludes them does not see them through
this API. Spec item 12 exempts them only where runs and crons *use* them (RunService).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from aegra import logs
from aegra.domain.assistants import (
    COLUMNS,
    Changes,
    NewAssistant,
    Page,
    Query,
    Row,
    SortBy,
    ThreadCascade,
    as_uuid,
    canonical_id,
    mirror,
)
from aegra.domain.auth import Caller, Filter
from aegra.domain.errors import Conflict, DomainError, NotFound
from aegra.domain.ports import Authorizer
from aegra.domain.resource_ports import AssistantStore, GraphCatalog, RunCanceller

log = logs.get_logger("aegra.assistants")
RESOURCE = "assistants"


class AssistantService:
    def __init__(self, *, store: AssistantStore, graphs: GraphCatalog, runs: RunCanceller,
                 auth: Authorizer) -> None:
        self.store = store
        self.graphs = graphs
        self.runs = runs
        self.auth = auth

    # -- helpers ---------------------------------------------------------------------------
    def _id(self, value: str) -> str:
        return canonical_id(self.graphs, value)

    def _require_graph(self, graph_id: str | None) -> None:
        if graph_id is not None and graph_id not in self.graphs:
            raise NotFound(f"Graph '{graph_id}' not found. Expected one of: "
                           f"{sorted(self.graphs.ids())}")

    async def _authorize(self, caller: Caller, action: str, value: dict[str, Any]
                         ) -> Filter | None:
        return await self.auth.authorize(caller, RESOURCE, action, value)

    async def _read(self, caller: Caller, assistant_id: str) -> tuple[str, Filter | None]:
        aid = self._id(assistant_id)
        return aid, await self._authorize(caller, "read", {"assistant_id": as_uuid(aid),
                                                           "metadata": {}})

    # -- use cases -------------------------------------------------------------------------
    async def create(self, caller: Caller, *, assistant_id: str, graph_id: str,
                     config: dict[str, Any], context: dict[str, Any] | None,
                     metadata: dict[str, Any] | None, name: str | None,
                     description: str | None,
                     if_exists: Literal["raise", "do_nothing"] | None) -> Row:
        value: dict[str, Any] = {
            "assistant_id": as_uuid(assistant_id), "graph_id": graph_id, "config": config,
            "context": context, "metadata": dict(metadata or {}),
            "if_exists": if_exists or "raise", "name": name or "Untitled"}
        flt = await self._authorize(caller, "create", value)
        self._require_graph(graph_id)
        config, context = mirror(config, context)
        row, created = await self.store.create(NewAssistant(
            assistant_id=assistant_id, graph_id=graph_id, name=name or "Untitled",
            description=description, config=config, context=context or {},
            metadata=value.get("metadata") or {}), where=flt)
        # Someone else's id is a conflict whatever if_exists says: returning it would
        # reveal it (platform: Assistants.put checks the filter first).
        if row is None or (not created and (if_exists or "raise") == "raise"):
            raise Conflict(f"Assistant '{assistant_id}' already exists")
        return row

    async def get(self, caller: Caller, assistant_id: str) -> Row:
        aid, flt = await self._read(caller, assistant_id)
        return await self.store.get(aid, where=flt)

    async def patch(self, caller: Caller, assistant_id: str, *, graph_id: str | None,
                    config: dict[str, Any], context: dict[str, Any] | None,
                    metadata: dict[str, Any] | None, name: str | None,
                    description: str | None) -> Row:
        aid = self._id(assistant_id)
        value: dict[str, Any] = {
            "assistant_id": as_uuid(aid), "graph_id": graph_id, "config": config,
            "context": context, "metadata": dict(metadata or {}), "name": name}
        flt = await self._authorize(caller, "update", value)
        self._require_graph(graph_id)
        config, context = mirror(config, context)
        # An empty metadata merges nothing: the same as keeping it.
        return await self.store.patch(aid, Changes(
            graph_id=graph_id, config=config or None, context=context,
            metadata=value.get("metadata") or None, name=name, description=description),
            where=flt)

    async def set_latest(self, caller: Caller, assistant_id: str, version: int) -> Row:
        aid = self._id(assistant_id)
        flt = await self._authorize(caller, "update", {
            "assistant_id": as_uuid(aid), "version": version, "metadata": {}})
        return await self.store.set_latest(aid, version, where=flt)

    async def delete(self, caller: Caller, assistant_id: str, *, delete_threads: bool
                     ) -> None:
        """Its in-flight runs stop first (only once the caller may delete it); their rows
        then go with the assistant (cascade)."""
        aid = self._id(assistant_id)
        flt = await self._authorize(caller, "delete", {"assistant_id": as_uuid(aid)})
        active = await self.store.in_flight_runs(aid, where=flt)
        if active:
            await self.runs.cancel(active, "interrupt")
        threads = await self._cascade(caller, aid) if delete_threads else []
        thread_ids = await self.store.delete(aid, where=flt, threads=threads)
        await self.graphs.delete_checkpoints(thread_ids)

    async def _cascade(self, caller: Caller, assistant_id: str) -> list[ThreadCascade]:
        """Which of the assistant's threads go with it: under custom auth, each one the
        caller may delete (threads.delete per thread, as the platform does; a refused
        one is skipped, not an error). Threads made after the listing stay."""
        if not self.auth.enabled:
            return [ThreadCascade()]
        groups: dict[bytes, tuple[Filter | None, list[str]]] = {}
        for thread_id in await self.store.thread_ids(assistant_id):
            try:
                flt = await self.auth.authorize(caller, "threads", "delete", {
                    "thread_id": as_uuid(thread_id), "run_id": None})
            except DomainError as exc:
                if exc.status not in (401, 403):
                    raise
                log.warning("assistants.cascade_skipped", thread_id=thread_id,
                            assistant_id=assistant_id, reason=str(exc))
                continue
            key = msgspec.json.encode(flt)
            groups.setdefault(key, (flt, []))[1].append(thread_id)
        return [ThreadCascade(thread_ids=ids, where=flt) for flt, ids in groups.values()]

    async def search(self, caller: Caller, *, graph_id: str | None, name: str | None,
                     metadata: dict[str, Any] | None, limit: int, offset: int,
                     sort_by: SortBy | None, sort_order: Literal["asc", "desc"] | None,
                     select: list[str] | None) -> tuple[list[Row], int | None]:
        """One page and the next offset (None on the last page)."""
        value: dict[str, Any] = {"graph_id": graph_id, "metadata": dict(metadata or {}),
                                 "limit": limit, "offset": offset}
        flt = await self._authorize(caller, "search", value)
        self._require_graph(graph_id)
        rows, next_offset = await self.store.search(
            Query(graph_id=graph_id, name=name, metadata=value.get("metadata") or None),
            Page(limit=limit, offset=offset, sort_by=sort_by, sort_order=sort_order),
            where=flt)
        if select:
            rows = [{k: row[k] for k in COLUMNS if k in select} for row in rows]
        return rows, next_offset

    async def count(self, caller: Caller, *, graph_id: str | None, name: str | None,
                    metadata: dict[str, Any] | None) -> int:
        value: dict[str, Any] = {"graph_id": graph_id, "metadata": dict(metadata or {}),
                                 "limit": 0, "offset": 0}
        flt = await self._authorize(caller, "search", value)
        self._require_graph(graph_id)
        return await self.store.count(
            Query(graph_id=graph_id, name=name, metadata=value.get("metadata") or None),
            where=flt)

    async def versions(self, caller: Caller, assistant_id: str, *,
                       metadata: dict[str, Any] | None, limit: int, offset: int
                       ) -> list[Row]:
        """Newest first."""
        aid, flt = await self._read(caller, assistant_id)
        return await self.store.versions(aid, metadata=metadata, limit=limit, offset=offset,
                                         where=flt)

    # -- graph introspection (reads the assistant: assistants.read) -----------------------
    async def _graph_and_config(self, caller: Caller, assistant_id: str
                                ) -> tuple[str, dict[str, Any]]:
        row = await self.get(caller, assistant_id)
        config = dict(row["config"])
        config["configurable"] = dict(config.get("configurable") or {})
        return row["graph_id"], config

    async def graph(self, caller: Caller, assistant_id: str, xray: bool | int
                    ) -> dict[str, Any]:
        graph_id, config = await self._graph_and_config(caller, assistant_id)
        return await self.graphs.drawing(graph_id, config, xray)

    async def schemas(self, caller: Caller, assistant_id: str) -> dict[str, Any]:
        graph_id, config = await self._graph_and_config(caller, assistant_id)
        return await self.graphs.schemas(graph_id, config)

    async def subgraphs(self, caller: Caller, assistant_id: str, namespace: str | None,
                        recurse: bool) -> dict[str, Any]:
        graph_id, config = await self._graph_and_config(caller, assistant_id)
        return await self.graphs.subgraphs(graph_id, config, namespace, recurse)
