"""The run-execution span and one span per executed LangGraph node.

The run span continues the trace context stored in the run's execution params
(``tracecontext.PARAM``), so it joins the client's trace on whichever instance claimed
the run; a run created without one (a cron) starts its own trace. Node spans come from
LangGraph's callbacks, never from wrapping user code: a node is the chain LangGraph
starts with a ``graph:step:N`` tag and ``langgraph_node`` metadata. Their parent is found
through the callbacks' run ids (the run span, or the node span of an enclosing subgraph
node), never through ambient contextvars: the callbacks fire in asyncio tasks inside
trio-asyncio, where the Trio side's context is not theirs.

When tracing is off the runner gets ``NO_TRACE``: no handler is attached to the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import trio
from langchain_core.callbacks import BaseCallbackHandler
from langgraph.errors import GraphBubbleUp
from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from aegra import tracecontext
from aegra.domain.ports import ClaimedRun, Outcome

W3C = TraceContextTextMapPropagator()
FAILED = frozenset({"error", "timeout"})


class NodeSpans(BaseCallbackHandler):
    """LangChain callbacks -> node spans under ``run``. Sync and inline: the callback
    manager calls it directly in the loop (no executor hop per event)."""

    run_inline = True
    ignore_llm = ignore_chat_model = ignore_retriever = ignore_agent = True
    ignore_retry = ignore_custom_event = True

    def __init__(self, tracer: Tracer, run: Span) -> None:
        self.tracer = tracer
        self.run = run
        self.parents: dict[UUID, UUID | None] = {}  # chain run id -> its parent's
        self.spans: dict[UUID, Span] = {}  # chain run id -> node span

    def _enclosing(self, parent: UUID | None) -> Span:
        while parent is not None:
            span = self.spans.get(parent)
            if span is not None:
                return span
            parent = self.parents.get(parent)
        return self.run

    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: object, *,
                       run_id: UUID, parent_run_id: UUID | None = None,
                       tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
                       **kwargs: object) -> None:
        self.parents[run_id] = parent_run_id
        node = (metadata or {}).get("langgraph_node")
        if node is None or not any(t.startswith("graph:step:") for t in tags or ()):
            return
        attributes = {"langgraph.node": str(node)}
        if (step := (metadata or {}).get("langgraph_step")) is not None:
            attributes["langgraph.step"] = str(step)
        parent = set_span_in_context(self._enclosing(parent_run_id))
        self.spans[run_id] = self.tracer.start_span(str(node), context=parent,
                                                    attributes=attributes)

    def on_chain_end(self, outputs: object, *, run_id: UUID, **kwargs: object) -> None:
        self.parents.pop(run_id, None)
        span = self.spans.pop(run_id, None)
        if span is not None:
            span.end()

    def on_chain_error(self, error: BaseException, *, run_id: UUID,
                       parent_run_id: UUID | None = None, **kwargs: object) -> None:
        self.parents.pop(run_id, None)
        span = self.spans.pop(run_id, None)
        if isinstance(error, GraphBubbleUp):  # an interrupt: the node paused, not failed
            if span is not None:
                span.set_attribute("langgraph.interrupted", True)
                span.end()
            return
        if span is None and parent_run_id is None:
            span = self.run  # the graph itself failed: the exception belongs to the run
            span.record_exception(error)
            return
        if span is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end()

    def close(self) -> None:
        """End what a cancelled run left open."""
        for span in self.spans.values():
            span.end()
        self.spans.clear()
        self.parents.clear()


class RunTrace:
    """The run span of one execution; ``attach`` puts its node handler in the config."""

    def __init__(self, tracer: Tracer, span: Span) -> None:
        self.span = span
        self.nodes = NodeSpans(tracer, span)

    def attach(self, config: dict[str, Any]) -> None:
        config["callbacks"] = [self.nodes]

    def finish(self, outcome: Outcome) -> None:
        self.span.set_attribute("aegra.run.status", outcome.status)
        if outcome.status in FAILED:
            error = outcome.error or {}
            self.span.set_status(Status(StatusCode.ERROR, str(
                error.get("message") or error.get("error") or outcome.status)))


class _NoTrace(RunTrace):
    def __init__(self) -> None:
        pass

    def attach(self, config: dict[str, Any]) -> None:
        pass

    def finish(self, outcome: Outcome) -> None:
        pass


NO_TRACE = _NoTrace()


@contextmanager
def run_trace(tracer: Tracer | None, claimed: ClaimedRun) -> Iterator[RunTrace]:
    """The run span around one execution (``NO_TRACE`` when tracing is off)."""
    if tracer is None:
        yield NO_TRACE
        return
    p = claimed.params
    stored = p.get(tracecontext.PARAM)
    parent = W3C.extract(stored) if isinstance(stored, dict) else None
    graph_id = str(p.get("graph_id") or "")
    span = tracer.start_span(f"run {graph_id}", context=parent, kind=SpanKind.CONSUMER,
                             attributes={
                                 "aegra.run_id": claimed.run_id,
                                 "aegra.thread_id": claimed.thread_id or "",
                                 "aegra.assistant_id": claimed.assistant_id or "",
                                 "aegra.graph_id": graph_id,
                                 "aegra.run.attempt": claimed.attempt})
    trace = RunTrace(tracer, span)
    try:
        yield trace
    except trio.Cancelled:
        span.set_attribute("aegra.run.cancelled", True)  # cancel, timeout, drain: no error
        raise
    except Exception as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        trace.nodes.close()
        span.end()
