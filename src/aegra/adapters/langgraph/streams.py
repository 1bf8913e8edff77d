"""How a run's LangGraph output becomes wire events (asyncio side, no I/O of its own):
the platform's ``messages`` accumulation, and the ``events`` mode's driver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from langchain_core.messages import BaseMessageChunk, message_chunk_to_message
from langchain_core.runnables import RunnableConfig

from aegra.adapters.langgraph.introspect import Graph
from aegra.adapters.langgraph.serde import encode

Emit = Callable[[str, bytes], None]  # Producer.emit


class Messages:
    """Studio's ``messages`` mode: metadata once per id, then the accumulated message."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.seen: dict[str, Any] = {}

    def feed(self, message: object, meta: object) -> None:
        msg_id = getattr(message, "id", None) or ""
        if msg_id not in self.seen:
            self.emit("messages/metadata", encode({msg_id: {"metadata": meta}}))
            self.seen[msg_id] = None
        if isinstance(message, BaseMessageChunk):
            acc = self.seen[msg_id]
            acc = message if acc is None else acc + message
            self.seen[msg_id] = acc
            # As the platform does: the accumulated chunk sent as a plain message ("ai").
            self.emit("messages/partial", encode([message_chunk_to_message(acc)]))
        else:
            self.seen[msg_id] = message
            self.emit("messages/complete", encode([message]))


async def chunks(graph: Graph, stream_input: object, config: dict[str, Any],
                 kwargs: dict[str, Any], events: Emit | None) -> AsyncIterator[Any]:
    """The graph's stream chunks. With ``events`` requested the graph runs under
    ``astream_events`` (as on the platform): the root's ``on_chain_stream`` events carry
    the same chunks, every other callback event goes out as an ``events`` event."""
    rc = cast(RunnableConfig, config)
    if events is None:
        async for chunk in graph.astream(stream_input, rc, **kwargs):
            yield chunk
        return
    root = str(config["run_id"])
    async for event in graph.astream_events(stream_input, rc, version="v2", **kwargs):
        if "langsmith:hidden" in (event.get("tags") or ()):
            continue
        if event["event"] == "on_chain_stream" and str(event.get("run_id")) == root:
            yield event["data"]["chunk"]
        else:
            events("events", encode(event))
