"""Every kind of graph value the registry accepts, for the registry and assistants tests.

``builder`` is an uncompiled StateGraph; the ``make_*`` functions are factories of each
supported signature. Factories record the last config they saw in ``SEEN`` so the unit
tests can check what was passed.
"""

from contextlib import asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph_sdk.runtime import ServerRuntime
from typing_extensions import TypedDict  # pydantic needs it for JSON Schemas on Python < 3.12

SEEN: dict[str, Any] = {}


class State(TypedDict, total=False):
    value: str


def _build(name: str) -> StateGraph:
    def node(state: State) -> State:
        return {"value": f"{state.get('value', '')}{name}"}

    b = StateGraph(State)
    b.add_node(name, node)
    b.add_edge(START, name)
    b.add_edge(name, END)
    return b


builder = _build("plain")


def make_graph():  # no argument; returns an uncompiled graph (the registry compiles it)
    SEEN["no_arg"] = True
    return _build("no_arg")


def make_graph_config(config: RunnableConfig):
    SEEN["config"] = config
    node = config.get("configurable", {}).get("node_name", "configured")
    return _build(node).compile()


async def make_graph_async(config: RunnableConfig):
    SEEN["async"] = config
    return _build("async_made").compile()


@asynccontextmanager
async def make_graph_cm(config: RunnableConfig):
    SEEN["cm_entered"] = SEEN.get("cm_entered", 0) + 1
    try:
        yield _build("from_cm").compile()
    finally:
        SEEN["cm_exited"] = SEEN.get("cm_exited", 0) + 1


def make_graph_runtime(config: RunnableConfig, runtime: ServerRuntime):
    SEEN["runtime"] = runtime
    return _build("with_runtime").compile()
