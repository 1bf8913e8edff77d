"""Benchmark graphs (no network, no API key).

``noop``: one node that returns ``{}``: what a run costs when the graph does nothing.

``spin``: one synchronous node that burns ``{"ms": N}`` (default 50) milliseconds of CPU
in a busy loop: a CPU-heavy graph (LangGraph runs sync nodes in its thread pool, so it
competes with the server's event loop for the GIL). ``spin_async``: the same node as
``async def``, so it blocks the event loop itself for those milliseconds.

``stream``: one node that streams tokens through a fake chat model (langchain_core's
``GenericFakeChatModel`` with a native ``_astream``), so ``stream_mode="messages-tuple"``
yields one event per chunk. The native ``_astream`` matters: ``GenericFakeChatModel`` only
has a sync ``_stream``, and BaseChatModel's default ``_astream`` then fetches every chunk
through ``run_in_executor`` (a thread-pool round trip per token, ~0.4 ms of CPU), which
real providers' async clients do not do; the floor would measure thread hand-offs. The
input sets the size and pace: ``{"tokens": N, "delay": S}`` streams ``words(N)`` words,
i.e. ``chunks(N)`` chunks (the fake model splits on whitespace and streams the separators
as chunks too), sleeping ``S`` seconds after each chunk. ``{"tokens": 21, "delay": 0.1}``
is the 2-second run.

Used by ``aegra.json`` of ``bench/runs.py`` (``bench/graphs.py:noop`` and
``bench/graphs.py:stream``) and imported in-process by ``bench/floor.py``.
``python bench/graphs.py`` runs each graph once in memory as a smoke test.
"""

from __future__ import annotations

import asyncio  # noqa: TID251  (a benchmark, not server code)
import itertools
import re
import sys
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGenerationChunk
from langgraph.graph import END, START, StateGraph  # noqa: TID251  (a benchmark, not server code)
from langgraph.graph.message import add_messages  # noqa: TID251  (a benchmark, not server code)


# -- no-op -----------------------------------------------------------------------------------
class NoopState(TypedDict, total=False):
    x: int


def _nothing(state: NoopState) -> dict[str, Any]:
    return {}


_noop = StateGraph(NoopState)
_noop.add_node("nothing", _nothing)
_noop.add_edge(START, "nothing")
_noop.add_edge("nothing", END)
noop = _noop.compile()


# -- CPU-heavy ---------------------------------------------------------------------------------
class SpinState(TypedDict, total=False):
    ms: float
    spun: float


def _spin(state: SpinState) -> dict[str, Any]:
    start = time.perf_counter()
    until = start + float(state.get("ms") or 50.0) / 1000
    while time.perf_counter() < until:
        pass
    return {"spun": time.perf_counter() - start}


async def _spin_async(state: SpinState) -> dict[str, Any]:
    return _spin(state)


def _one_node(state: type, node: Any) -> Any:
    graph = StateGraph(state)
    graph.add_node("node", node)
    graph.add_edge(START, "node")
    graph.add_edge("node", END)
    return graph.compile()


spin = _one_node(SpinState, _spin)
spin_async = _one_node(SpinState, _spin_async)


# -- token streaming -------------------------------------------------------------------------
class StreamState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    tokens: int
    delay: float


def words(tokens: int) -> int:
    return max(1, (tokens + 1) // 2)


def chunks(tokens: int) -> int:
    """Chunks (so messages-tuple events) one run streams: words plus separators."""
    return 2 * words(tokens) - 1


class FakeStreamingModel(GenericFakeChatModel):
    """GenericFakeChatModel's chunks (split on whitespace, one message id), streamed by a
    native async ``_astream`` as a provider's async client would."""

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        message = next(self.messages)
        assert isinstance(message, AIMessage) and isinstance(message.content, str)
        parts = re.split(r"(\s)", message.content)
        for i, token in enumerate(parts):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token, id=message.id))
            if i == len(parts) - 1:
                chunk.message.chunk_position = "last"  # type: ignore[attr-defined]
            if run_manager:
                await run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk


_models: dict[int, FakeStreamingModel] = {}


def _model(tokens: int) -> FakeStreamingModel:
    model = _models.get(tokens)
    if model is None:
        text = " ".join(f"tok{i}" for i in range(words(tokens)))
        model = _models[tokens] = FakeStreamingModel(
            messages=itertools.repeat(AIMessage(content=text)))
    return model


async def _speak(state: StreamState) -> dict[str, Any]:
    tokens = int(state.get("tokens") or 9)
    delay = float(state.get("delay") or 0.0)
    reply = None
    async for chunk in _model(tokens).astream([HumanMessage(content="go")]):
        reply = chunk if reply is None else reply + chunk
        if delay:
            await asyncio.sleep(delay)
    return {"messages": [reply]}


_stream = StateGraph(StreamState)
_stream.add_node("speak", _speak)
_stream.add_edge(START, "speak")
_stream.add_edge("speak", END)
stream = _stream.compile()


def _smoke() -> None:
    async def go() -> None:
        print("noop ->", await noop.ainvoke({}))
        print("spin ->", await spin.ainvoke({"ms": 5}))
        print("spin_async ->", await spin_async.ainvoke({"ms": 5}))
        n = 0
        async for _ in stream.astream({"tokens": 9}, stream_mode="messages"):
            n += 1
        print(f"stream tokens=9 -> {n} messages events (expected {chunks(9)})")
    asyncio.run(go())


if __name__ == "__main__":
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__)
        sys.exit(0)
    _smoke()
