"""A retried run is "finished" only when its last checkpoint has no task left.

Found by the chaos benchmark (bench/chaos.py): with LangGraph's default
``durability="async"`` the checkpoint after a step is saved while the next step already
runs, but each task's writes are saved as soon as it finishes. A worker killed between the
two leaves a last checkpoint whose tasks all have saved writes: ``StateSnapshot.next`` is
then empty although steps remain, and the retried run used to be finalized ``success``
with a partial output (and the reaper's exhausted-run check did the same).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from aegra.adapters.langgraph.runner import _finished, _resume_point
from aegra.domain.ports import ClaimedRun


class S(TypedDict, total=False):
    done: list[int]


def _graph() -> Any:
    def step(i: int) -> Any:
        def run(state: S) -> S:
            return {"done": [*state.get("done", []), i]}
        return run

    b = StateGraph(S)
    for i in range(3):
        b.add_node(f"s{i}", step(i))
    b.add_edge(START, "s0")
    b.add_edge("s0", "s1")
    b.add_edge("s1", "s2")
    b.add_edge("s2", END)
    return b.compile(checkpointer=InMemorySaver())


CLAIM = ClaimedRun(run_id="r1", thread_id="t1", assistant_id="a", attempt=2,
                   params={"graph_id": "g"}, metadata={}, stateless=False, user_id=None)
CONFIG = {"configurable": {"thread_id": "t1"}, "metadata": {"run_id": "r1"}}


async def _killed_after_s1_wrote() -> Any:
    """Attempt 1: s0 checkpointed; s1 finished and its writes were saved; then the
    process died before the checkpoint after s1 was written."""
    graph = _graph()
    async for _ in graph.astream({}, CONFIG, interrupt_before=["s1"]):
        pass
    state = await graph.aget_state(CONFIG)
    (task,) = state.tasks
    await graph.checkpointer.aput_writes(
        state.config, [("done", [0, 1]), ("branch:to:s2", None)], task.id)
    return graph


def test_saved_task_writes_without_the_next_checkpoint_are_not_a_finished_graph() -> None:
    async def scenario() -> None:
        graph = await _killed_after_s1_wrote()
        assert (await graph.aget_state(CONFIG)).next == ()  # the trap
        outcome, started = await _resume_point(graph, CLAIM, {"configurable": {
            "thread_id": "t1"}})
        assert outcome is None and started  # resume, do not finalize
        assert await _finished(graph, {"configurable": {"thread_id": "t1"}}, "r1") == (
            False, None)
        # Resuming applies s1's saved writes (s1 does not run again) and runs s2.
        async for _ in graph.astream(None, {"configurable": {"thread_id": "t1"}}):
            pass
        assert (await graph.aget_state(CONFIG)).values["done"] == [0, 1, 2]

    asyncio.run(scenario())


def test_a_run_whose_graph_really_finished_is_finalized_with_its_output() -> None:
    async def scenario() -> None:
        graph = _graph()
        async for _ in graph.astream({}, CONFIG):
            pass
        outcome, started = await _resume_point(graph, CLAIM, {"configurable": {
            "thread_id": "t1"}})
        assert started and outcome is not None and outcome.status == "success"
        assert outcome.values == {"done": [0, 1, 2]}
        assert await _finished(graph, {"configurable": {"thread_id": "t1"}}, "r1") == (
            True, {"done": [0, 1, 2]})

    asyncio.run(scenario())


def test_saved_writes_of_the_last_node_make_a_finished_graph_for_the_reaper() -> None:
    """Killed right after the last node saved its writes, before the final checkpoint:
    the work is complete; an exhausted run must be settled success, not failed."""
    async def scenario() -> None:
        graph = _graph()
        async for _ in graph.astream({}, CONFIG, interrupt_before=["s2"]):
            pass
        state = await graph.aget_state(CONFIG)
        (task,) = state.tasks
        await graph.checkpointer.aput_writes(state.config, [("done", [0, 1, 2])], task.id)
        assert await _finished(graph, {"configurable": {"thread_id": "t1"}}, "r1") == (
            True, {"done": [0, 1, 2]})
        # A retried attempt resumes instead: it applies the writes, runs nothing, ends.
        outcome, started = await _resume_point(graph, CLAIM, {"configurable": {
            "thread_id": "t1"}})
        assert outcome is None and started
        async for _ in graph.astream(None, {"configurable": {"thread_id": "t1"}}):
            pass
        final = await graph.aget_state(CONFIG)
        assert final.values["done"] == [0, 1, 2] and not final.next and not final.tasks

    asyncio.run(scenario())
