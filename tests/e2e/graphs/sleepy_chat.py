"""A messages graph that naps when told to: "sleep 30" sleeps 30 s before replying, any
other text is echoed at once. For A2A task cancellation (a task still working).

The sleep is ``asyncio.sleep`` in an ``async def`` node, so cancelling the run's scope
stops it promptly.
"""

import asyncio
from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


async def reply(state: State) -> State:
    text = str(state["messages"][-1].content)
    word, _, seconds = text.partition(" ")
    if word == "sleep":
        await asyncio.sleep(float(seconds))
    return {"messages": [AIMessage(content=f"awake: {text}")]}


builder = StateGraph(State)
builder.add_node("reply", reply)
builder.add_edge(START, "reply")
builder.add_edge("reply", END)
graph = builder.compile()
