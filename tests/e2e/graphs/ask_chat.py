"""A chat that asks before answering: ``interrupt()`` with a question, then an AI
message quoting the answer it was resumed with. No API key needed."""

from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


def ask(state: State) -> State:
    answer = interrupt({"question": "which colour?"})
    return {"messages": [AIMessage(content=f"you said: {answer}")]}


builder = StateGraph(State)
builder.add_node("ask", ask)
builder.add_edge(START, "ask")
builder.add_edge("ask", END)
graph = builder.compile()
