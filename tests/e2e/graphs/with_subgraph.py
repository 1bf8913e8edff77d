"""A parent graph whose second node is a compiled subgraph, for the thread-state e2e tests.

``update_state(as_node="plan")`` leaves ``next == ["sub"]``, a pending subgraph task whose
checkpoint namespace (``sub:<task id>``) is what ``get_state(subgraphs=...)`` reports.
"""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    topic: str
    notes: list[str]


def inner(state: State) -> State:
    return {"notes": [*state.get("notes", []), f"inner:{state.get('topic', '')}"]}


_sub = StateGraph(State)
_sub.add_node("inner", inner)
_sub.add_edge(START, "inner")
_sub.add_edge("inner", END)


def plan(state: State) -> State:
    return {"notes": [*state.get("notes", []), "planned"]}


builder = StateGraph(State)
builder.add_node("plan", plan)
builder.add_node("sub", _sub.compile())
builder.add_edge(START, "plan")
builder.add_edge("plan", "sub")
builder.add_edge("sub", END)
graph = builder.compile()
