"""Token streaming without a network: a fake chat model streams its reply word by word.

``GenericFakeChatModel`` splits the reply on whitespace and streams one chunk per piece,
all with one message id, which is what messages / messages-tuple streaming needs.
"""

import itertools
from typing import Annotated, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

REPLY = "the quick brown fox"
model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=REPLY)]))


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


async def chat(state: State) -> State:
    return {"messages": [await model.ainvoke(state["messages"])]}


builder = StateGraph(State)
builder.add_node("chat", chat)
builder.add_edge(START, "chat")
builder.add_edge("chat", END)
graph = builder.compile()
