"""Reports the plain values of the run's ``config["configurable"]`` (what the server put
there: request headers, the body's config, pinned ids), for the http settings tests."""

from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    seen: dict[str, Any]


def report(state: State, config: RunnableConfig) -> State:
    conf = config.get("configurable") or {}
    plain = (str, int, float, bool, list, dict)
    return {"seen": {k: v for k, v in conf.items()
                     if not k.startswith("__") and isinstance(v, plain)}}


builder = StateGraph(State)
builder.add_node("report", report)
builder.add_edge(START, "report")
builder.add_edge("report", END)
graph = builder.compile()
