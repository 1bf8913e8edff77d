"""Benchmark server CPU per streamed event: v1 run SSE, v2 thread SSE, v2 WebSocket.

A script, not a test. Starts its own PostgreSQL (embedded, unless ``--database-url``)
and one ``aegra serve`` (``bench/graphs.py:stream``), then, in rounds that interleave the
transports so they share the same window of machine load, streams runs of 1 and of
``--tokens`` chunks over each of:

  v1-sse   ``POST /threads/{id}/runs/stream`` with v2's stream modes (values, updates,
           messages-tuple, custom, tasks, checkpoints): every v1 event is sent
  v2-sse   ``run.start`` then ``POST /threads/{id}/stream/events`` (values, updates,
           messages, lifecycle) until the root lifecycle ends
  v2-ws    ``run.start`` then the WebSocket twin, same channels

``--clients`` streams run at once, ``--runs`` per batch. Server CPU is read from
/proc/<pid>/stat around each batch. Reported per transport (median over rounds): CPU per
received event of the long runs ("overall", run execution included) and the marginal CPU
per event, ``(CPU(long) - CPU(short)) / (events(long) - events(short))``: what one more
streamed chunk costs, producing it included (the same work for every transport), the
per-run costs (creating, claiming, finishing the run) cancelled out.
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251  (a benchmark, not server code)
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from _common import Postgres, cpu_s, median, phase  # noqa: E402
from runs import Server, stream_run  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402

DB = "aegra_bench_v2"
MODES = ["values", "updates", "messages-tuple", "custom", "tasks", "checkpoints"]
CHANNELS = ["values", "updates", "messages", "lifecycle"]


def _ended(event: dict[str, Any]) -> bool:
    params = event.get("params") or {}
    return (event.get("method") == "lifecycle" and not params.get("namespace")
            and params.get("data", {}).get("event") in ("completed", "failed"))


class Bench:
    def __init__(self, server: Server, args: argparse.Namespace) -> None:
        self.server = server
        self.args = args
        self.client = httpx.AsyncClient(base_url=server.url, timeout=120)
        self.input: dict[str, Any] = {"tokens": args.tokens}

    async def start(self) -> tuple[str, str, int]:
        tid = str(uuid.uuid4())
        r = await self.client.post(f"/threads/{tid}/commands", json={
            "id": 1, "method": "run.start",
            "params": {"assistant_id": "stream", "input": self.input}})
        answer = r.json()
        assert answer["type"] == "success", answer
        return tid, answer["result"]["run_id"], answer["meta"]["applied_through_seq"]

    async def v1(self) -> int:
        tid = str(uuid.uuid4())
        body = {"assistant_id": "stream", "input": self.input, "stream_mode": MODES,
                "if_not_exists": "create"}
        s = await stream_run(self.client, f"/threads/{tid}/runs/stream", body)
        if s.error or s.status != "success":
            raise RuntimeError(f"v1 stream failed: {s.error} {s.status}")
        return sum(s.counts.values())

    async def v2_sse(self) -> int:
        tid, _, since = await self.start()
        body = {"channels": CHANNELS, "since": since}
        n, buf = 0, b""
        async with self.client.stream("POST", f"/threads/{tid}/stream/events",
                                      json=body) as r:
            r.raise_for_status()
            async for part in r.aiter_raw():
                buf += part
                while (cut := buf.find(b"\n\n")) >= 0:
                    block, buf = buf[:cut], buf[cut + 2:]
                    line = next((x for x in block.split(b"\n") if x.startswith(b"data: ")),
                                None)
                    if line is None:
                        continue
                    n += 1
                    if _ended(json.loads(line[6:])):
                        return n
        raise RuntimeError("v2 SSE ended before the run did")

    async def v2_ws(self) -> int:
        tid, _, since = await self.start()
        url = self.server.url.replace("http", "ws", 1) + f"/threads/{tid}/stream/events"
        n = 0
        async with ws_connect(url, max_size=None) as ws:
            await ws.send(json.dumps({"id": 1, "method": "subscription.subscribe",
                                      "params": {"channels": CHANNELS, "since": since}}))
            await ws.recv()  # the subscription's success envelope
            async for raw in ws:
                n += 1
                if _ended(json.loads(raw)):
                    return n
        raise RuntimeError("v2 WebSocket closed before the run ended")

    async def batch(self, fn: Any, tokens: int) -> dict[str, float]:
        self.input = {"tokens": tokens}
        per = self.args.runs // self.args.clients

        async def client() -> int:
            return sum([await fn() for _ in range(per)])

        cpu0, t0 = cpu_s(self.server.pid), time.monotonic()
        events = sum(await asyncio.gather(*(client() for _ in range(self.args.clients))))
        return {"cpu_s": cpu_s(self.server.pid) - cpu0, "events": events,
                "runs": per * self.args.clients, "wall_s": time.monotonic() - t0}

    async def run(self) -> dict[str, Any]:
        kinds = {"v1-sse": self.v1, "v2-sse": self.v2_sse, "v2-ws": self.v2_ws}
        for fn in kinds.values():  # warm-up: imports, pools, first-run caches
            await fn()
        rounds: list[dict[str, dict[str, dict[str, float]]]] = []
        for i in range(self.args.rounds):
            with phase(f"round {i + 1}/{self.args.rounds}"):
                this: dict[str, dict[str, dict[str, float]]] = {}
                for name, fn in kinds.items():
                    this[name] = {"short": await self.batch(fn, 1),
                                  "long": await self.batch(fn, self.args.tokens)}
                    for size, r in this[name].items():
                        print(f"   {name:7} {size:5} {r['runs']} runs, {r['events']:.0f} "
                              f"events, {r['cpu_s']:.2f} s CPU, {r['wall_s']:.1f} s",
                              flush=True)
                rounds.append(this)
        out: dict[str, Any] = {"rounds": rounds}
        for name in kinds:
            longs = [r[name]["long"] for r in rounds]
            shorts = [r[name]["short"] for r in rounds]
            out[name] = {
                "events_per_run": longs[0]["events"] / longs[0]["runs"],
                "cpu_per_event_us": median([x["cpu_s"] / x["events"] * 1e6 for x in longs]),
                "marginal_cpu_per_event_us": median([
                    (x["cpu_s"] - y["cpu_s"]) / (x["events"] - y["events"]) * 1e6
                    for x, y in zip(longs, shorts, strict=True)])}
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", help="an existing PostgreSQL (default: embedded)")
    p.add_argument("--tokens", type=int, default=400, help="chunks per run (about)")
    p.add_argument("--runs", type=int, default=16, help="runs per transport and round")
    p.add_argument("--clients", type=int, default=4, help="concurrent streams")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    with Postgres(args.database_url) as pg:
        dsn = pg.create_database(DB)
        workdir = Path(tempfile.mkdtemp(prefix="aegra-bench-v2-"))
        server = Server(workdir, dsn, workers=1, jobs=8, log_level="WARNING").start()
        try:
            results = asyncio.run(Bench(server, args).run())
        finally:
            server.stop()
            pg.drop_database(DB)
    print("\n== server CPU per streamed event (median over rounds)")
    for name in ("v1-sse", "v2-sse", "v2-ws"):
        r = results[name]
        print(f"   {name:7} {r['events_per_run']:.0f} events/run: "
              f"{r['cpu_per_event_us']:.0f} µs/event overall, "
              f"{r['marginal_cpu_per_event_us']:.0f} µs/event marginal")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
