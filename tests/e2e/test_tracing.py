"""OpenTelemetry traces (spec/operations.md §8): real `aegra serve` processes exporting
over OTLP/HTTP to a real receiver in the test (``otlp_receiver``).

One server: a run created with a client ``traceparent`` gives a SERVER span parented to
the client's span, a run span with the aegra.* attributes, and node spans, all in the
client's trace; without one, the server span is a root and the run shares its trace.
Two servers on one Redis: a run created on A and executed on B is in the client's trace.
No OTEL variable: nothing is sent (not even to localhost:4318) and nothing is logged.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import httpx

from tests.e2e.conftest import GRAPHS, base_env, write_project
from tests.e2e.otlp_receiver import Receiver, Span, otlp_receiver

HUMAN = {"messages": [{"role": "human", "content": "hi"}]}


def _env(database_url: str, endpoint: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in base_env(database_url).items() if not k.startswith("OTEL_")}
    env.update(extra)
    if endpoint is not None:
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                   OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                   OTEL_BSP_SCHEDULE_DELAY="100")
    return env


def _traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def _span(receiver: Receiver, span_id: str, what: str) -> Span:
    """The span ``span_id``, waited for: another process (or batch) may export it later
    than the spans that name it as their parent."""
    found: Span = receiver.wait_for(
        lambda spans: next((s for s in spans if s.span_id == span_id), None), what)
    return found


def _of_run(spans: list[Span], run_id: str) -> list[Span]:
    """The run span of ``run_id`` and its node spans (once both nodes have arrived)."""
    runs = [s for s in spans if s.attributes.get("aegra.run_id") == run_id]
    if len(runs) != 1:
        return []
    nodes = [s for s in spans if s.parent_id == runs[0].span_id]
    return [runs[0], *nodes] if len(nodes) >= 2 else []


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _create(http: httpx.Client, thread_id: str, graph: str, run_input: dict,
            headers: dict[str, str]) -> dict:
    r = http.post(f"/threads/{thread_id}/runs", headers=headers,
                  json={"assistant_id": graph, "input": run_input})
    assert r.status_code == 200, r.text
    run = r.json()
    http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join", timeout=30)
    return run


def test_one_server_traces_requests_runs_and_nodes(start_server, database_url, tmp_path):
    write_project(tmp_path, {"agent": f"{GRAPHS / 'echo.py'}:graph",
                             "fail": f"{GRAPHS / 'fail.py'}:graph"})
    with otlp_receiver() as receiver:
        server = start_server(_env(database_url, receiver.url,
                                   OTEL_SERVICE_NAME="aegra-traced"))
        with httpx.Client(base_url=server.url, timeout=10) as http:
            thread_id = http.post("/threads", json={}).json()["thread_id"]
            parent, trace_id, client_span = _traceparent()
            run = _create(http, thread_id, "agent", HUMAN, {"traceparent": parent})
            failed = _create(http, thread_id, "fail", {}, {"traceparent": _traceparent()[0]})
            untraced = _create(http, thread_id, "agent", HUMAN, {})

        spans = receiver.wait_for(lambda s: _of_run(s, run["run_id"]), "run spans")
        run_span, *nodes = spans
        assert {s.trace_id for s in spans} == {trace_id}
        assert sorted(s.name for s in nodes) == ["reply", "think"]
        assert all(s.attributes["langgraph.node"] == s.name for s in nodes)
        assert run_span.kind in ("INTERNAL", "CONSUMER")
        assert run_span.attributes["aegra.thread_id"] == thread_id
        assert run_span.attributes["aegra.assistant_id"] == run["assistant_id"]
        assert run_span.attributes["aegra.graph_id"] == "agent"
        assert run_span.service == "aegra-traced"
        server_span = _span(receiver, run_span.parent_id, "the run's parent span")
        assert server_span.kind == "SERVER" and server_span.trace_id == trace_id
        assert server_span.parent_id == client_span
        assert server_span.name == "POST /threads/{thread_id}/runs"
        assert server_span.attributes["http.response.status_code"] == 200
        assert server_span.attributes["http.route"] == "/threads/{thread_id}/runs"

        # A failing node: the error is on its span and on the run's.
        bad_run, *bad_nodes = receiver.wait_for(lambda s: _of_run(s, failed["run_id"]),
                                                "failed run spans")
        boom = next(s for s in bad_nodes if s.name == "boom")
        assert boom.status == 2 and "exception" in boom.events
        assert bad_run.status == 2

        # No traceparent: a root server span, and the run's spans share its trace.
        free_run, *free_nodes = receiver.wait_for(
            lambda s: _of_run(s, untraced["run_id"]), "untraced run spans")
        root = _span(receiver, free_run.parent_id, "the untraced run's parent span")
        assert root.kind == "SERVER" and root.parent_id == ""
        assert {s.trace_id for s in free_nodes} == {root.trace_id} != {trace_id}


def test_run_created_on_one_instance_and_executed_on_another(start_server, database_url,
                                                              private_redis, tmp_path):
    write_project(tmp_path, {"agent": f"{GRAPHS / 'echo.py'}:graph",
                             "slow": f"{GRAPHS / 'slow.py'}:graph"})
    one_slot = {"REDIS_BROKER_ENABLED": "true", "REDIS_URL": private_redis.url,
                "WORKER_COUNT": "1", "N_JOBS_PER_WORKER": "1", "N_JOBS_PER_WORKER_MAX": "1",
                "WORKER_DRAIN_TIMEOUT": "1"}
    with otlp_receiver() as receiver:
        a = start_server(_env(database_url, receiver.url, OTEL_SERVICE_NAME="aegra-a",
                              **one_slot))
        with httpx.Client(base_url=a.url, timeout=10) as http:
            thread_id = http.post("/threads", json={}).json()["thread_id"]
            # A's one slot is taken before B exists, so A's next run can only go to B.
            held = http.post("/runs", json={"assistant_id": "slow",
                                             "input": {"first": 30, "delay": 0}}).json()
            held_url = f"/threads/{held['thread_id']}/runs/{held['run_id']}"
            wait_until(lambda: http.get(held_url).json()["status"] == "running", "held run")
            b = start_server(_env(database_url, receiver.url, OTEL_SERVICE_NAME="aegra-b",
                                  **one_slot))
            parent, trace_id, client_span = _traceparent()
            run = _create(http, thread_id, "agent", HUMAN, {"traceparent": parent})
            assert http.get(f"/threads/{thread_id}/runs/{run['run_id']}"
                            ).json()["status"] == "success"
            http.post(held_url + "/cancel")
        assert b.proc is not None
        run_span, *nodes = receiver.wait_for(lambda s: _of_run(s, run["run_id"]),
                                             "run spans from B")
        assert {s.service for s in (run_span, *nodes)} == {"aegra-b"}
        assert {s.trace_id for s in (run_span, *nodes)} == {trace_id}
        server_span = _span(receiver, run_span.parent_id, "the run's parent span")
        assert server_span.service == "aegra-a" and server_span.parent_id == client_span
        # Stopped while the receiver still answers: their exit flush would otherwise retry
        # against a closed port for its whole bound (seconds of teardown, nothing tested).
        b.stop()
        a.stop()


def test_no_otel_variable_sends_nothing_and_logs_nothing(start_server, database_url,
                                                         tmp_path):
    # The SDK's default endpoint: a server that exported anyway would post here.
    with otlp_receiver(port=4318) as receiver:
        env = _env(database_url, None)
        assert not any(k.startswith("OTEL_") for k in env)
        server = start_server(env)
        with httpx.Client(base_url=server.url, timeout=10) as http:
            thread_id = http.post("/threads", json={}).json()["thread_id"]
            run = _create(http, thread_id, "agent", HUMAN, {"traceparent": _traceparent()[0]})
            stored = http.get(f"/threads/{thread_id}/runs/{run['run_id']}").json()
        assert "trace_context" not in stored["kwargs"]
        server.stop()  # a provider would flush at exit
        assert receiver.posts == []
        logs = server.logs().lower()
        assert "run.finished" in logs
        assert not any(word in logs for word in ("tracing", "opentelemetry", "otlp"))
