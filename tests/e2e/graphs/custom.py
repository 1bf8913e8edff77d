"""A node that reports progress through ``get_stream_writer`` (stream_mode="custom")."""

from typing import TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    count: int


def work(state: State) -> State:
    writer = get_stream_writer()
    for i in range(state.get("count", 3)):
        writer({"progress": i})
    return {"count": state.get("count", 3)}


builder = StateGraph(State)
builder.add_node("work", work)
builder.add_edge(START, "work")
builder.add_edge("work", END)
graph = builder.compile()
