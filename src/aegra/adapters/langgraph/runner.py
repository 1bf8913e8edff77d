"""GraphRunner: executes one claimed run with LangGraph, crossing the bridge once.

The asyncio side (``_drive``) iterates ``graph.astream`` and emits each chunk to the run's
event producer as it arrives, so streaming costs no bridge crossing per event. Cancelling
the Trio scope around ``execute`` cancels the asyncio task, repeatedly until it has ended
(``aio.call_to_the_end``: a single asyncio cancel was seen swallowed inside the graph).
The modes LangGraph is asked for are the client's plus ``values`` and ``updates``, which
the server needs for the /wait result and to see interrupts; unrequested ones are not
published.
"""

from __future__ import annotations

import copy
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command, Send, StateSnapshot
from opentelemetry.trace import Tracer

from aegra.adapters import aio
from aegra.adapters.auth import User
from aegra.adapters.langgraph.fenced import FencedOut, FencedSaver, fence
from aegra.adapters.langgraph.graphs import GraphRegistry
from aegra.adapters.langgraph.introspect import Graph
from aegra.adapters.langgraph.serde import encode, to_json
from aegra.adapters.langgraph.streams import Messages, chunks
from aegra.adapters.langgraph.tracing import run_trace
from aegra.domain.ports import ClaimedRun, Outcome, Producer
from aegra.domain.runs import STREAM_MODES
from aegra.logs import get_logger

log = get_logger("aegra.runner")


def run_config(claimed: ClaimedRun) -> dict[str, Any]:
    p = claimed.params
    config = copy.deepcopy(p.get("config") or {})
    configurable = dict(config.get("configurable") or {})
    # Server-pinned keys: a client must never choose the thread the checkpointer writes to.
    configurable.update(
        thread_id=claimed.thread_id, run_id=claimed.run_id,
        assistant_id=claimed.assistant_id, graph_id=p.get("graph_id"),
    )
    if claimed.user_id:
        configurable["user_id"] = claimed.user_id
    user = configurable.get("langgraph_auth_user")
    if isinstance(user, dict):
        # Stored as plain data (any instance may run it); graph code reads it both ways,
        # ``user["identity"]`` and ``user.identity``, as on the platform.
        configurable["langgraph_auth_user"] = User(user)
    checkpoint = p.get("checkpoint") or {}
    configurable.pop("checkpoint_id", None)
    configurable.pop("checkpoint_ns", None)
    if checkpoint.get("checkpoint_id"):
        configurable["checkpoint_id"] = checkpoint["checkpoint_id"]
        if checkpoint.get("checkpoint_ns"):
            configurable["checkpoint_ns"] = checkpoint["checkpoint_ns"]
    config["configurable"] = configurable
    metadata = dict(config.get("metadata") or {})
    metadata.update(claimed.metadata or {})
    metadata.update(run_id=claimed.run_id, thread_id=claimed.thread_id,
                    graph_id=p.get("graph_id"), assistant_id=claimed.assistant_id,
                    run_attempt=claimed.attempt)
    config["metadata"] = metadata
    config["run_id"] = claimed.run_id
    return config


def _command(raw: dict[str, Any]) -> Command[Any]:
    goto = raw.get("goto")
    if goto is not None:
        items = goto if isinstance(goto, list) else [goto]
        goto = [Send(g["node"], g.get("input")) if isinstance(g, dict) else g for g in items]
    update = raw.get("update")
    if isinstance(update, list):
        update = [tuple(pair) for pair in update]
    kwargs: dict[str, Any] = {}
    if "resume" in raw:
        kwargs["resume"] = raw["resume"]
    if update is not None:
        kwargs["update"] = update
    if goto is not None:
        kwargs["goto"] = goto
    return Command(**kwargs)


async def _drive(graph: Graph, claimed: ClaimedRun, config: dict[str, Any],
                 producer: Producer, owner: str) -> Outcome:
    p = claimed.params
    # Every checkpoint write carries the claim. With LangGraph's default durability its
    # loop does not wait for the writes, so neither does the saver: they are settled
    # (committed, or the claim found lost) before the run's outcome is returned.
    key = fence(claimed.run_id, owner, claimed.attempt,
                write_behind=p.get("durability") in (None, "async"))
    saver = graph.checkpointer if isinstance(graph.checkpointer, FencedSaver) else None
    try:
        outcome = await _stream(graph, claimed, config, producer)
        if saver is not None and outcome.status in ("success", "error"):
            try:
                await saver.settle(key)
            except FencedOut:
                raise
            except Exception as exc:  # e.g. the database went away: the run failed
                error = {"error": type(exc).__name__,
                         "message": f"saving the run's checkpoints failed: {exc}"}
                producer.emit("error", encode(error))
                return Outcome(status="error", values=outcome.values, error=error)
    except FencedOut:
        return Outcome(status="fenced")
    finally:
        if saver is not None:
            saver.release(key)
    return outcome


async def _stream(graph: Graph, claimed: ClaimedRun, config: dict[str, Any],
                  producer: Producer) -> Outcome:
    p = claimed.params
    emit = producer.emit
    emit("metadata", encode({"run_id": claimed.run_id, "attempt": claimed.attempt}))
    requested = set(p.get("stream_mode") or ["values"])
    subgraphs = bool(p.get("stream_subgraphs"))
    modes = sorted({STREAM_MODES[m] for m in requested if m in STREAM_MODES and m != "events"}
                   | {"values", "updates"})
    stream_input: Any = p.get("input")
    if p.get("command") is not None:
        stream_input = _command(p["command"])
    if claimed.attempt > 1:
        done, started = await _resume_point(graph, claimed, config)
        if done is not None:
            return done
        if started:  # continue from the last checkpoint: completed steps do not run again
            stream_input = None
    kwargs: dict[str, Any] = {"stream_mode": modes, "subgraphs": subgraphs}
    for key in ("interrupt_before", "interrupt_after", "durability"):
        if p.get(key) is not None:
            kwargs[key] = p[key]
    if p.get("context"):
        kwargs["context"] = p["context"]
    messages = Messages(emit) if "messages" in requested else None
    last_values: Any = None
    interrupted = False
    try:
        async for chunk in chunks(graph, stream_input, config, kwargs,
                                   emit if "events" in requested else None):
            if subgraphs:
                ns, mode, data = chunk
            else:
                ns, (mode, data) = (), chunk
            suffix = "|" + "|".join(ns) if ns else ""
            if mode == "values":
                if not ns:
                    last_values = data
                if "values" in requested:
                    emit("values" + suffix, encode(data))
            elif mode == "updates":
                if not ns and isinstance(data, dict) and "__interrupt__" in data:
                    interrupted = True
                if "updates" in requested:
                    emit("updates" + suffix, encode(data))
            elif mode == "messages":
                if "messages-tuple" in requested:
                    emit("messages" + suffix, encode(data))
                if messages is not None:
                    messages.feed(*data)
            else:
                emit(mode + suffix, encode(data))
    except FencedOut:
        return Outcome(status="fenced")
    except Exception as exc:  # a graph error is an outcome, not a crash
        if _fenced(exc):
            return Outcome(status="fenced")
        error = {"error": type(exc).__name__, "message": str(exc)}
        log.debug("run.error_traceback", error=error["error"], exc_info=exc)
        emit("error", encode(error))
        return Outcome(status="error", values=to_json(last_values), error=error)
    return Outcome(status="success", values=to_json(last_values), interrupted=interrupted)


def _fenced(exc: BaseException) -> bool:
    """LangGraph may wrap a failed checkpoint write; look through the chain."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, FencedOut):
            return True
        if isinstance(exc, BaseExceptionGroup):
            return any(_fenced(e) for e in exc.exceptions)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return False


def _rc(config: dict[str, Any]) -> RunnableConfig:
    return cast(RunnableConfig, config)


def _started(state: StateSnapshot, claimed: ClaimedRun) -> bool:
    """Did an earlier attempt of this run already write checkpoints?"""
    return bool(state and state.metadata and state.metadata.get("run_id") == claimed.run_id)


def _complete(state: StateSnapshot) -> bool:
    """Does this checkpoint show the graph finished? Only when no task is left at all.

    ``state.next`` is not enough: it omits tasks whose writes were already saved, so it is
    also empty when the last step's tasks all finished but the checkpoint after them was
    never written (``durability="async"`` saves it while the next step already runs; a
    crash in between leaves exactly that). Resuming such a run applies those saved writes
    and continues; calling it finished would return a partial output."""
    return not state.next and not state.tasks


async def _resume_point(graph: Graph, claimed: ClaimedRun, config: dict[str, Any]
                        ) -> tuple[Outcome | None, bool]:
    """For a retried run: (outcome if its graph already finished, whether it had started).

    A run whose last checkpoint shows the graph finished is finalized with that output,
    never run again; one that had started resumes from its latest checkpoint.
    """
    latest = {**config, "configurable": {
        k: v for k, v in config["configurable"].items() if k != "checkpoint_id"}}
    state = await graph.aget_state(_rc(latest))
    if not _started(state, claimed):
        return None, False
    config["configurable"].pop("checkpoint_id", None)
    if _complete(state):
        return Outcome(status="success", values=to_json(state.values)), True
    return None, True


async def _thread_view(graph: Graph, config: dict[str, Any]
                       ) -> tuple[object, dict[str, Any], bool]:
    """Latest values and pending interrupts by task id, for the thread row."""
    latest = {"configurable": {"thread_id": config["configurable"]["thread_id"]}}
    state = await graph.aget_state(_rc(latest))
    interrupts = {t.id: to_json(list(t.interrupts)) for t in state.tasks if t.interrupts}
    return to_json(state.values), interrupts, bool(state.next)


async def _finished(graph: Graph, config: dict[str, Any], run_id: str
                    ) -> tuple[bool, object]:
    """Did this run's graph finish (for a run whose retries are exhausted)?

    Also true when the last step's tasks all finished and saved their writes but the
    final checkpoint was not written (a crash right after the last node, with
    ``durability="async"``), provided none of those writes would start another task:
    that work is complete and must not be failed for lack of retries."""
    state = await graph.aget_state(_rc(config))
    meta = state.metadata or {}
    if meta.get("run_id") != run_id or state.next:
        return False, None
    if state.tasks and not await _only_final_writes(graph, state):
        return False, None
    return True, to_json(state.values)


async def _only_final_writes(graph: Graph, state: StateSnapshot) -> bool:
    """Every pending task finished, and none of their saved writes triggers a node."""
    if any(t.error or t.interrupts for t in state.tasks):
        return False
    # The registry always attaches the server's saver to a graph it opens.
    saver = cast(BaseCheckpointSaver[Any], graph.checkpointer)
    saved = await saver.aget_tuple(state.config)
    triggers = {ch for node in graph.nodes.values() for ch in node.triggers}
    triggers.add("__pregel_tasks")  # Send()
    return not any(channel in triggers for _task, channel, _value in
                   ((saved.pending_writes or ()) if saved is not None else ()))


class LangGraphRunner:
    """Trio-side GraphRunner over the graph registry (``open(graph_id, config)``)."""

    def __init__(self, graphs: GraphRegistry, owner: str = "",
                 tracer: Tracer | None = None) -> None:
        self.graphs = graphs
        self.owner = owner  # this instance's claim identity, for checkpoint fencing
        self.tracer = tracer  # None: tracing off, no span and no callback handler

    async def execute(self, claimed: ClaimedRun, producer: Producer
                      ) -> tuple[Outcome, object, dict[str, Any]]:
        """Run it; returns (outcome, thread values, thread interrupts by task)."""
        config = run_config(claimed)

        async def _all(graph: Graph) -> tuple[Outcome, object, dict[str, Any]]:
            outcome = await _drive(graph, claimed, config, producer, self.owner)
            values: Any = None
            interrupts: dict[str, Any] = {}
            paused = False
            if outcome.status == "fenced":
                return outcome, None, {}
            if outcome.status == "success" and outcome.interrupted:
                values, interrupts, paused = await _thread_view(graph, config)
            elif outcome.values is not None:
                values = outcome.values
            if isinstance(values, dict):
                values = {k: v for k, v in values.items() if k != "__interrupt__"}
            outcome.interrupted = outcome.interrupted or paused
            return outcome, values, interrupts

        # A run is the platform's "threads.create_run" access: factories taking a
        # ServerRuntime get the execution runtime with the run's context.
        with run_trace(self.tracer, claimed) as trace:
            async with self.graphs.open(claimed.params["graph_id"], config,
                                        access="threads.create_run",
                                        context=claimed.params.get("context")) as graph:
                trace.attach(config)  # after open: a graph factory never sees the handler
                result = await aio.call_to_the_end(_all, graph)
            trace.finish(result[0])
            return result

    async def thread_view(self, graph_id: str, thread_id: str
                          ) -> tuple[object, dict[str, Any], bool]:
        config = {"configurable": {"thread_id": thread_id}}
        async with self.graphs.open(graph_id, config) as graph:
            return await aio.call(_thread_view, graph, config)

    async def finished(self, graph_id: str | None, thread_id: str, run_id: str
                       ) -> tuple[bool, object]:
        """(True, output) when this run's last checkpoint shows its graph completed."""
        if graph_id is None or graph_id not in self.graphs:
            return False, None
        config = {"configurable": {"thread_id": thread_id}}
        async with self.graphs.open(graph_id, config) as graph:
            return await aio.call(_finished, graph, config, run_id)
