"""A multi-step graph for crash tests: each step sleeps, then records that it ran.

Set ``STEPS_LOG`` (a file path) in the server's environment; every completed step
appends ``<thread_id> <step> <pid>`` to it, so a test can tell which steps ran twice, and
in which server process.
"""

import asyncio
import os
from typing import TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

STEPS = 5


class State(TypedDict, total=False):
    done: list[int]
    delay: float


def make_step(i: int):
    async def step(state: State, config: RunnableConfig) -> State:
        await asyncio.sleep(state.get("delay", 1.0))
        path = os.environ.get("STEPS_LOG")
        if path:
            with open(path, "a") as fh:
                fh.write(f"{config['configurable']['thread_id']} {i} {os.getpid()}\n")
        return {"done": [*state.get("done", []), i]}
    return step


builder = StateGraph(State)
for i in range(STEPS):
    builder.add_node(f"s{i}", make_step(i))
builder.add_edge(START, "s0")
for i in range(STEPS - 1):
    builder.add_edge(f"s{i}", f"s{i + 1}")
builder.add_edge(f"s{STEPS - 1}", END)
graph = builder.compile()
