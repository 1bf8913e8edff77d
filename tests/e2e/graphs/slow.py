"""Three async nodes that each sleep ``delay`` seconds (from the input, default 0.3);
node ``one`` sleeps ``first`` instead when given, so a test can wait for one checkpoint
and then act while ``two`` is still sleeping.

The sleeps are ``asyncio.sleep`` inside ``async def`` nodes so cancelling the run's scope
cancels them promptly; ``trail`` shows which steps completed (checkpointed).
"""

import asyncio
import operator
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    delay: float
    first: float
    tag: str
    trail: Annotated[list[str], operator.add]


def _node(name: str):  # noqa: ANN202
    async def node(state: State) -> State:
        delay = state.get("delay", 0.3)
        await asyncio.sleep(state.get("first", delay) if name == "one" else delay)
        return {"trail": [f"{name}:{state.get('tag', '')}"]}

    return node


builder = StateGraph(State)
for _name in ("one", "two", "three"):
    builder.add_node(_name, _node(_name))
builder.add_edge(START, "one")
builder.add_edge("one", "two")
builder.add_edge("two", "three")
builder.add_edge("three", END)
graph = builder.compile()
