"""A tool-calling agent without a model: ``agent`` asks for ``add(2, 3)`` once, the
prebuilt ``ToolNode`` runs it, then ``agent`` answers with the sum. No API key needed."""

from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


def agent(state: State) -> State:
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        return {"messages": [AIMessage(content=f"sum is {last.content}")]}
    call = {"id": "call_add", "name": "add", "args": {"a": 2, "b": 3}}
    return {"messages": [AIMessage(content="", tool_calls=[call])]}


builder = StateGraph(State)
builder.add_node("agent", agent)
builder.add_node("tools", ToolNode([add]))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
graph = builder.compile()
