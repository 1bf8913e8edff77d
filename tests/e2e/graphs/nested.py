"""A parent graph with a compiled subgraph node, a context schema and distinct I/O schemas.

Used by the assistants e2e tests for /schemas, /graph?xray= and /subgraphs; no API key.
"""

from dataclasses import dataclass

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict  # pydantic needs it for JSON Schemas on Python < 3.12


@dataclass
class Context:
    model_name: str = "fake"
    temperature: float = 0.0


class InnerState(TypedDict, total=False):
    text: str
    inner_steps: int


def inner_work(state: InnerState) -> InnerState:
    return {"text": state.get("text", "") + "!", "inner_steps": state.get("inner_steps", 0) + 1}


inner_builder = StateGraph(InnerState)
inner_builder.add_node("inner_work", inner_work)
inner_builder.add_edge(START, "inner_work")
inner_builder.add_edge("inner_work", END)
inner = inner_builder.compile()


class Input(TypedDict, total=False):
    text: str


class Output(TypedDict, total=False):
    text: str
    count: int


class State(TypedDict, total=False):
    text: str
    count: int
    inner_steps: int


def prepare(state: State) -> State:
    return {"count": state.get("count", 0) + 1}


builder = StateGraph(State, context_schema=Context, input_schema=Input, output_schema=Output)
builder.add_node("prepare", prepare)
builder.add_node("child", inner)
builder.add_edge(START, "prepare")
builder.add_edge("prepare", "child")
builder.add_edge("child", END)
graph = builder.compile()
