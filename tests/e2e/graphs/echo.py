"""A two-node graph that needs no API key: appends an AI echo of the last message."""

from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    steps: int


def think(state: State) -> State:
    return {"steps": state.get("steps", 0) + 1}


def reply(state: State) -> State:
    last = state["messages"][-1].content if state.get("messages") else ""
    return {"messages": [AIMessage(content=f"echo: {last}")], "steps": state.get("steps", 0) + 1}


builder = StateGraph(State)
builder.add_node("think", think)
builder.add_node("reply", reply)
builder.add_edge(START, "think")
builder.add_edge("think", "reply")
builder.add_edge("reply", END)
graph = builder.compile()
