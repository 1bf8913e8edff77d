"""Benchmark the cost of OpenTelemetry tracing (issue 14): server CPU per no-op run and
per streamed event, tracing off vs on.

A script, not a test. Starts its own PostgreSQL (embedded, unless ``--database-url``),
a local OTLP/HTTP receiver (decodes every export, so the exporter does its real work),
and three ``aegra serve`` (``bench/graphs.py``), each with its own database:

  off    no ``OTEL_*`` variable (the default)
  off2   the same again: the gap between off and off2 is this window's noise
  on     ``OTEL_EXPORTER_OTLP_ENDPOINT`` = the receiver, ``OTEL_BSP_SCHEDULE_DELAY`` 500 ms

In each round every server gets, one after the other so they share the same window of
machine load: ``--runs`` sequential no-op runs (``/threads/{id}/runs/wait``, each with a
client ``traceparent``) and ``--streams`` streamed runs of ``--tokens`` chunks
(``/threads/{id}/runs/stream``, ``messages-tuple``). Server CPU is read from
/proc/<pid>/stat around each batch. Reported: medians over rounds, and the median of the
per-round ratios to ``off``.
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251  (a benchmark, not server code)
import json
import secrets
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from _common import Postgres, cpu_s, median, phase  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)
from runs import Server, stream_run  # noqa: E402

VARIANTS = ("off", "off2", "on")


class Receiver:
    """OTLP/HTTP on a free port: decodes each export and counts its spans."""

    def __init__(self) -> None:
        self.spans = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                req = ExportTraceServiceRequest.FromString(body)
                receiver.spans += sum(len(ss.spans) for rs in req.resource_spans
                                      for ss in rs.scope_spans)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _traceparent() -> dict[str, str]:
    return {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"}


async def noop_batch(server: Server, n: int) -> float:
    """CPU seconds per no-op run."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        cpu0 = cpu_s(server.pid)
        for _ in range(n):
            r = await client.post(f"/threads/{uuid.uuid4()}/runs/wait", headers=_traceparent(),
                                  json={"assistant_id": "noop", "input": {},
                                        "if_not_exists": "create"})
            r.raise_for_status()
        return (cpu_s(server.pid) - cpu0) / n


async def stream_batch(server: Server, n: int, tokens: int) -> float:
    """CPU seconds per streamed event."""
    async with httpx.AsyncClient(base_url=server.url, timeout=120,
                                 headers=_traceparent()) as client:
        cpu0, events = cpu_s(server.pid), 0
        for _ in range(n):
            s = await stream_run(client, f"/threads/{uuid.uuid4()}/runs/stream", {
                "assistant_id": "stream", "input": {"tokens": tokens},
                "stream_mode": ["messages-tuple"], "if_not_exists": "create"})
            if s.error or s.status != "success":
                raise RuntimeError(f"stream failed: {s.error} {s.status}")
            events += sum(s.counts.values())
        return (cpu_s(server.pid) - cpu0) / events


async def bench(servers: dict[str, Server], args: argparse.Namespace) -> dict[str, Any]:
    for server in servers.values():  # warm-up: imports, pools, first-run caches
        await noop_batch(server, 5)
        await stream_batch(server, 1, args.tokens)
    rounds: list[dict[str, dict[str, float]]] = []
    for i in range(args.rounds):
        with phase(f"round {i + 1}/{args.rounds}"):
            this: dict[str, dict[str, float]] = {}
            for name, server in servers.items():
                this[name] = {"run_ms": await noop_batch(server, args.runs) * 1e3,
                              "event_us": await stream_batch(server, args.streams,
                                                             args.tokens) * 1e6}
                print(f"   {name:5} {this[name]['run_ms']:.2f} ms/run, "
                      f"{this[name]['event_us']:.0f} µs/event", flush=True)
            rounds.append(this)
    out: dict[str, Any] = {"rounds": rounds}
    for name in servers:
        out[name] = {key: median([r[name][key] for r in rounds])
                     for key in ("run_ms", "event_us")}
        out[name].update({f"{key}_ratio": median([r[name][key] / r["off"][key]
                                                  for r in rounds])
                          for key in ("run_ms", "event_us")})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", help="an existing PostgreSQL (default: embedded)")
    p.add_argument("--runs", type=int, default=100, help="no-op runs per server and round")
    p.add_argument("--streams", type=int, default=8, help="streamed runs per server, round")
    p.add_argument("--tokens", type=int, default=200, help="chunks per streamed run (about)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    receiver = Receiver()
    traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
              "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_BSP_SCHEDULE_DELAY": "500"}
    servers: dict[str, Server] = {}
    with Postgres(args.database_url) as pg:
        try:
            for name in VARIANTS:
                dsn = pg.create_database(f"aegra_bench_tracing_{name}")
                workdir = Path(tempfile.mkdtemp(prefix=f"aegra-bench-otel-{name}-"))
                servers[name] = Server(workdir, dsn, workers=1, jobs=8, log_level="WARNING",
                                       extra_env=traced if name == "on" else None).start()
            results = asyncio.run(bench(servers, args))
        finally:
            for server in servers.values():
                server.stop()
            for name in servers:
                pg.drop_database(f"aegra_bench_tracing_{name}")
    time.sleep(1)  # the last batch export (OTEL_BSP_SCHEDULE_DELAY) before counting
    print("\n== server CPU, median over rounds (ratio: median of per-round ratios to off)")
    for name in VARIANTS:
        r = results[name]
        print(f"   {name:5} {r['run_ms']:.2f} ms per no-op run ({r['run_ms_ratio']:.3f}x), "
              f"{r['event_us']:.0f} µs per streamed event ({r['event_us_ratio']:.3f}x)")
    print(f"   spans received from 'on': {receiver.spans}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
