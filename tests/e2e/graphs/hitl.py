"""Human in the loop: ``ask`` pauses with ``interrupt()``; ``finish`` uses the answer.

``draft`` runs first so ``interrupt_before=["finish"]`` and ``update_state`` have a
checkpoint to act on. No API key needed.
"""

import operator
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    topic: str
    answer: str
    trail: Annotated[list[str], operator.add]


def draft(state: State) -> State:
    return {"trail": ["draft"]}


def ask(state: State) -> State:
    if state.get("answer"):  # edited in with update_state: no need to ask
        return {"trail": ["ask"]}
    answer = interrupt({"question": f"approve {state.get('topic', '')}?"})
    return {"answer": answer, "trail": ["ask"]}


def finish(state: State) -> State:
    return {"trail": [f"finish:{state.get('answer')}"]}


builder = StateGraph(State)
builder.add_node("draft", draft)
builder.add_node("ask", ask)
builder.add_node("finish", finish)
builder.add_edge(START, "draft")
builder.add_edge("draft", "ask")
builder.add_edge("ask", "finish")
builder.add_edge("finish", END)
graph = builder.compile()
