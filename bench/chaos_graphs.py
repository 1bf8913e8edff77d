"""Graphs of the chaos benchmark (``bench/chaos.py``); no network, no API key.

``steps``: five nodes in a row; each sleeps ``delay`` seconds (input, default 0.4). Every
node appends two lines to the file named by ``CHAOS_STEPS_LOG`` (if set), one when it
starts and one when it completes::

    <unix time> start|done <thread_id> <run_id> <step> <attempt> <pid>

``attempt`` is the run's claim token (``run_attempt`` in the run's metadata), so the
benchmark can tell a completed step that ran again in a later attempt (it must not) from
the step that was in flight when its instance died (which may). Lines are short single
``write`` calls on an ``O_APPEND`` file, so concurrent processes do not interleave them.

``noop``: one node that returns ``{}`` (throughput and ``/runs/wait`` latency).

``events``: emits ``n`` custom stream events (input, default 400), yielding to the event
loop between them, then returns (server CPU per streamed event).
"""

from __future__ import annotations

import asyncio  # noqa: TID251  graphs run on LangGraph's asyncio
import os
import time
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer  # noqa: TID251
from langgraph.graph import END, START, StateGraph  # noqa: TID251

STEPS = 5


class StepsState(TypedDict, total=False):
    done: list[int]
    delay: float


def _record(event: str, config: RunnableConfig, step: int) -> None:
    path = os.environ.get("CHAOS_STEPS_LOG")
    if not path:
        return
    configurable = config.get("configurable") or {}
    metadata = config.get("metadata") or {}
    attempt = metadata.get("run_attempt", configurable.get("run_attempt", 0))
    line = (f"{time.time():.6f} {event} {configurable.get('thread_id')} "
            f"{configurable.get('run_id')} {step} {attempt} {os.getpid()}\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _make_step(i: int) -> Any:
    async def step(state: StepsState, config: RunnableConfig) -> StepsState:
        _record("start", config, i)
        await asyncio.sleep(state.get("delay", 0.4))
        _record("done", config, i)
        return {"done": [*state.get("done", []), i]}
    step.__name__ = f"s{i}"
    return step


_steps = StateGraph(StepsState)
for _i in range(STEPS):
    _steps.add_node(f"s{_i}", _make_step(_i))
_steps.add_edge(START, "s0")
for _i in range(STEPS - 1):
    _steps.add_edge(f"s{_i}", f"s{_i + 1}")
_steps.add_edge(f"s{STEPS - 1}", END)
steps = _steps.compile()


class NoopState(TypedDict, total=False):
    x: int


def _nothing(state: NoopState) -> dict[str, Any]:
    return {}


_noop = StateGraph(NoopState)
_noop.add_node("nothing", _nothing)
_noop.add_edge(START, "nothing")
_noop.add_edge("nothing", END)
noop = _noop.compile()


class EventsState(TypedDict, total=False):
    n: int


async def _emit(state: EventsState) -> dict[str, Any]:
    write = get_stream_writer()
    for i in range(state.get("n", 400)):
        write({"i": i})
        await asyncio.sleep(0)
    return {}


_events = StateGraph(EventsState)
_events.add_node("emit", _emit)
_events.add_edge(START, "emit")
_events.add_edge("emit", END)
events = _events.compile()
