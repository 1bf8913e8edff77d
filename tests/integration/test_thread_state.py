"""ThreadState conversion of what the e2e ring cannot reach without runs: interrupts,
task errors and Command supersteps, on real LangGraph graphs (LangGraph's own
in-memory checkpointer; the Postgres one is covered by tests/e2e/test_threads.py)."""

from __future__ import annotations

import asyncio
from typing import TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from aegra.adapters.langgraph import state


class S(TypedDict, total=False):
    x: int


def _graph(node):  # one node between START and END, checkpointed in memory
    builder = StateGraph(S)
    builder.add_node("work", node)
    builder.add_edge(START, "work")
    builder.add_edge("work", END)
    return builder.compile(checkpointer=InMemorySaver())


def _ask(s: S) -> S:
    return {"x": interrupt({"question": "ok?"})}


def _boom(s: S) -> S:
    raise ValueError("boom")


async def _scenario() -> None:
    asking = _graph(_ask)
    config = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
    await asking.ainvoke({"x": 1}, config)
    got = await state.aget_state(asking, config)
    assert got["next"] == ["work"] and got["values"] == {"x": 1}
    [task] = got["tasks"]
    [pending] = task["interrupts"]
    assert pending == {"value": {"question": "ok?"}, "id": pending["id"]}
    assert isinstance(pending["id"], str) and pending["id"]
    assert got["interrupts"] == [pending]  # what Agent Chat UI reads
    cached = state.summary(await asking.aget_state(config))
    whole = cached.pop("state")  # what a state_update event carries
    assert cached == {"values": {"x": 1}, "interrupts": {task["id"]: [pending]},
                      "has_next": True}
    assert whole["values"] == {"x": 1} and whole["next"] == ["work"]

    # A resume written as a Command superstep, as threads.create(supersteps=...) sends it.
    checkpoint, after = await state.abulk_update(asking, config, [[
        {"as_node": "work", "command": {"update": {"x": 5}}}]])
    assert checkpoint["thread_id"] == "t1" and checkpoint["checkpoint_id"]
    assert after["values"] == {"x": 5} and after["interrupts"] == {}

    failing = _graph(_boom)
    config = {"configurable": {"thread_id": "t2", "checkpoint_ns": ""}}
    with pytest.raises(ValueError, match="boom"):
        await failing.ainvoke({"x": 1}, config)
    got = await state.aget_state(failing, config)
    assert got["next"] == ["work"]
    assert got["tasks"][0]["error"] == "ValueError('boom')"  # LangGraph keeps the repr
    assert await state.aget_state(failing, {"configurable": {
        "thread_id": "none", "checkpoint_ns": ""}}) is None  # -> the empty ThreadState


def test_interrupts_errors_and_commands_in_thread_state():
    asyncio.run(_scenario())
