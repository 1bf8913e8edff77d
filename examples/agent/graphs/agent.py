"""A sample graph that needs no API key: it echoes your last message and counts turns.

Replace ``reply`` with a call to your model (``langchain`` chat models, tools, ...) and
keep ``graph``: aegra.json points at ``./graphs/agent.py:graph``.
"""

from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: int


def reply(state: State) -> State:
    humans = [m for m in state.get("messages", []) if isinstance(m, HumanMessage)]
    last = humans[-1].content if humans else ""
    turns = state.get("turns", 0) + 1
    return {"messages": [AIMessage(content=f"echo #{turns}: {last}")], "turns": turns}


builder = StateGraph(State)
builder.add_node("reply", reply)
builder.add_edge(START, "reply")
builder.add_edge("reply", END)
graph = builder.compile(name="agent")
