"""The ``ThreadStates`` port on LangGraph: the thread's graph, opened with the server's
checkpointer, and the checkpoint tables themselves.

Each method opens the graph (a factory graph is built for this call, with
``ServerRuntime.access_context`` as the platform sets it) and crosses the bridge once
through ``aegra.adapters.langgraph.state``, which maps LangGraph's refusals to 400.
"""

from __future__ import annotations

from typing import Any, cast

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from aegra.adapters.langgraph import state
from aegra.adapters.langgraph.graphs import GraphRegistry

Json = dict[str, Any]


class LangGraphThreadStates:
    def __init__(self, graphs: GraphRegistry) -> None:
        self.graphs = graphs

    def _saver(self) -> AsyncPostgresSaver:
        # Bound by boot after the pool opens; read per call, never cached earlier. The
        # checkpoint-table operations below need LangGraph's PostgreSQL saver.
        return cast(AsyncPostgresSaver, self.graphs.checkpointer)

    async def get_state(self, graph_id: str, config: Json, *, open_config: Json,
                        subgraphs: bool) -> Json | None:
        async with self.graphs.open(graph_id, open_config, access="threads.read") as graph:
            return await state.get_state(graph, config, subgraphs)

    async def update_state(self, graph_id: str, config: Json, *, open_config: Json,
                           values: object, as_node: str | None) -> tuple[Json, Json]:
        async with self.graphs.open(graph_id, open_config, access="threads.update") as graph:
            return await state.update_state(graph, config, values, as_node)

    async def bulk_update(self, graph_id: str, config: Json, *, open_config: Json,
                          supersteps: list[list[Json]]) -> tuple[Json, Json]:
        async with self.graphs.open(graph_id, open_config, access="threads.update") as graph:
            return await state.bulk_update(graph, config, supersteps)

    async def history(self, graph_id: str, config: Json, *, open_config: Json, limit: int,
                      before: str | None, metadata: Json | None) -> list[Json]:
        async with self.graphs.open(graph_id, open_config, access="threads.read") as graph:
            return await state.history(graph, config, limit, before, metadata)

    async def copy_checkpoints(self, source_id: str, target_id: str) -> None:
        await state.copy_checkpoints(self._saver(), source_id, target_id)

    async def delete_checkpoints(self, thread_ids: list[str]) -> None:
        await state.delete_checkpoints(self._saver(), thread_ids)

    async def prune_keep_latest(self, thread_ids: list[str]) -> None:
        await state.prune_keep_latest(self._saver(), thread_ids)
