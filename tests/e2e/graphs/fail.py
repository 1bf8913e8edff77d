"""A graph whose second node raises, after the first one has written state."""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    text: str


def ok(state: State) -> State:
    return {"text": "ok"}


def boom(state: State) -> State:
    raise ValueError(f"boom: {state.get('text')}")


builder = StateGraph(State)
builder.add_node("ok", ok)
builder.add_node("boom", boom)
builder.add_edge(START, "ok")
builder.add_edge("ok", "boom")
builder.add_edge("boom", END)
graph = builder.compile()
