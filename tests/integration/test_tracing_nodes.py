"""Node spans from LangGraph callbacks (adapters/langgraph/tracing.py), on a real graph and
the real OpenTelemetry SDK (its in-memory exporter): parents through subgraphs, errors,
interrupts, and the run span's attributes. The e2e ring (tests/e2e/test_tracing.py)
covers the server, the stored context and OTLP export."""

from __future__ import annotations

import asyncio
from typing import TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from aegra.adapters.langgraph.tracing import run_trace
from aegra.adapters.tracing import enabled, from_env
from aegra.adapters.tracing.http import route_template
from aegra.domain.ports import ClaimedRun, Outcome

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class State(TypedDict, total=False):
    x: int


def _graph(inner_node):  # noqa: ANN001, ANN202
    sub = StateGraph(State)
    sub.add_node("inner", inner_node)
    sub.add_edge(START, "inner")
    sub.add_edge("inner", END)
    g = StateGraph(State)
    g.add_node("first", lambda s: {"x": s.get("x", 0) + 1})
    g.add_node("nested", sub.compile())
    g.add_edge(START, "first")
    g.add_edge("first", "nested")
    g.add_edge("nested", END)
    return g.compile(checkpointer=InMemorySaver())


def _trace(graph, claimed: ClaimedRun) -> tuple[list, BaseException | None]:  # noqa: ANN001
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    error = None
    with run_trace(provider.get_tracer("t"), claimed) as trace:
        config = {"configurable": {"thread_id": claimed.thread_id}}
        trace.attach(config)
        try:
            asyncio.run(graph.ainvoke({"x": 1}, config))
            trace.finish(Outcome(status="success"))
        except Exception as exc:  # noqa: BLE001
            error = exc
            trace.finish(Outcome(status="error", error={"message": str(exc)}))
    return exporter.get_finished_spans(), error


def _claimed(thread_id: str) -> ClaimedRun:
    return ClaimedRun(run_id="r1", thread_id=thread_id, assistant_id="a1", attempt=1,
                      params={"graph_id": "g", "trace_context": {"traceparent": TRACEPARENT}},
                      metadata={}, stateless=False, user_id=None)


def test_nodes_nest_under_the_run_and_their_subgraph_node() -> None:
    spans, error = _trace(_graph(lambda s: {"x": s["x"] * 2}), _claimed("t1"))
    assert error is None
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {"run g", "first", "nested", "inner"}
    run = by_name["run g"]
    assert run.parent is not None and format(run.parent.span_id, "016x") == "b7ad6b7169203331"
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACEPARENT[3:35]}
    attributes = dict(run.attributes or {})
    assert {k: attributes[k] for k in ("aegra.run_id", "aegra.thread_id", "aegra.assistant_id",
                                       "aegra.graph_id")} == {
        "aegra.run_id": "r1", "aegra.thread_id": "t1", "aegra.assistant_id": "a1",
        "aegra.graph_id": "g"}
    assert by_name["first"].parent.span_id == run.context.span_id
    assert by_name["nested"].parent.span_id == run.context.span_id
    assert by_name["inner"].parent.span_id == by_name["nested"].context.span_id
    assert by_name["inner"].attributes["langgraph.node"] == "inner"


def test_a_failing_node_marks_itself_and_the_run() -> None:
    def boom(state: State) -> State:
        raise ValueError("boom")

    spans, error = _trace(_graph(boom), _claimed("t2"))
    assert isinstance(error, ValueError)
    by_name = {s.name: s for s in spans}
    assert by_name["inner"].status.status_code is StatusCode.ERROR
    assert [e.name for e in by_name["inner"].events] == ["exception"]
    assert by_name["run g"].status.status_code is StatusCode.ERROR
    assert by_name["first"].status.status_code is StatusCode.UNSET


def test_an_interrupt_is_not_an_error() -> None:
    spans, error = _trace(_graph(lambda s: {"x": interrupt("ask")}), _claimed("t3"))
    assert error is None
    inner = next(s for s in spans if s.name == "inner")
    assert inner.status.status_code is StatusCode.UNSET
    assert inner.attributes["langgraph.interrupted"] is True


@pytest.mark.parametrize("stored", [None, "not a dict"])
def test_a_run_without_stored_context_starts_its_own_trace(stored: object) -> None:
    claimed = _claimed("t4")
    params = {k: v for k, v in claimed.params.items() if k != "trace_context"}
    if stored is not None:
        params["trace_context"] = stored
    spans, _ = _trace(_graph(lambda s: {}), ClaimedRun(**{
        **{f: getattr(claimed, f) for f in claimed.__struct_fields__}, "params": params}))
    run = next(s for s in spans if s.name == "run g")
    assert run.parent is None


@pytest.mark.parametrize(("environ", "on"), [
    ({}, False),
    ({"OTEL_SERVICE_NAME": "x", "OTEL_BSP_SCHEDULE_DELAY": "500"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
])
def test_tracing_is_on_only_with_an_endpoint(environ: dict[str, str], on: bool) -> None:
    assert enabled(environ) is on
    if not on:
        assert from_env(environ) is None  # off: nothing is built, no exporter thread


def test_span_names_use_the_route_template() -> None:
    assert route_template("/threads/<thread_id>/runs") == "/threads/{thread_id}/runs"
    assert route_template("/threads/<uuid:tid>/runs/<string:rid>") == \
        "/threads/{tid}/runs/{rid}"
