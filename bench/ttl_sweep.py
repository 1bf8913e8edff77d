"""Benchmark: a TTL sweep of 100,000 expired checkpoints under a closed-loop load (issue
13, item 2). A script, not a test.

Starts its own PostgreSQL (embedded pgserver, unless ``--database-url``) and one ``aegra
serve`` serving ``bench/graphs.py:noop`` with its sweeper every 0.5 s. ``--clients``
closed-loop clients each run no-op runs back to back (``POST /threads/{id}/runs/wait``
on a thread of their own, which has no TTL) for the whole benchmark.

Each round: seed ``--threads`` threads with ``--checkpoints`` checkpoints each (1,000 x
100 = 100,000; rows copied in bulk SQL from one real checkpoint of a real no-op run,
with their blobs and writes), expiry in the future; wait ``--settle`` s; then a
*baseline* window of ``--window`` s; then expire them all in one statement and the
*sweep* window lasts until the server's sweeper has deleted every seeded thread. Latency
samples are assigned to the window their request started in, so both windows are in the
same time span, interleaved over ``--rounds``: the machine's drift hits both alike.

Reported: p50/p99 of the load in baseline and sweep windows (all rounds pooled), the
ratio of the p99s, sweep durations, checkpoints per second swept, and requests per second.
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251  (a load generator, not server code)
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH, Postgres, pct, phase  # noqa: E402
from cron_lateness import Server  # noqa: E402  same server wrapper (sweeper env below)

DB = "aegra_bench_ttl"
PREFIX = "ttlb-"

SEED = """
WITH tpl AS (SELECT * FROM checkpoints WHERE thread_id = %(tpl)s
             ORDER BY checkpoint_id DESC LIMIT 1),
     ids AS (SELECT %(prefix)s || %(round)s || '-' || i AS tid
               FROM generate_series(1, %(threads)s) i),
     t AS (INSERT INTO thread (thread_id, ttl)
           SELECT tid, jsonb_build_object('strategy', 'delete', 'ttl_minutes', 600,
                  'expires_at', now() + interval '10 hours') FROM ids),
     c AS (INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,
                                    parent_checkpoint_id, type, checkpoint, metadata)
           SELECT ids.tid, tpl.checkpoint_ns, tpl.checkpoint_id || '-' || lpad(j::text, 6, '0'),
                  tpl.parent_checkpoint_id, tpl.type, tpl.checkpoint, tpl.metadata
             FROM ids, tpl, generate_series(1, %(per)s) j),
     b AS (INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
           SELECT ids.tid, b.checkpoint_ns, b.channel, b.version, b.type, b.blob
             FROM ids, checkpoint_blobs b WHERE b.thread_id = %(tpl)s)
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,
                               channel, type, blob, task_path)
SELECT ids.tid, w.checkpoint_ns, w.checkpoint_id || '-' || lpad(j::text, 6, '0'), w.task_id,
       w.idx, w.channel, w.type, w.blob, w.task_path
  FROM ids, checkpoint_writes w, generate_series(1, %(per)s) j
 WHERE w.thread_id = %(tpl)s
"""


class Load:
    """Closed loop: each client issues its next run when the previous one answered."""

    def __init__(self, url: str, clients: int) -> None:
        self.url, self.clients = url, clients
        self.samples: list[tuple[float, float]] = []  # (start, seconds)
        self.errors = 0
        self.stop = False

    async def client(self) -> None:
        import httpx

        async with httpx.AsyncClient(base_url=self.url, timeout=60) as http:
            tid = (await http.post("/threads", json={})).json()["thread_id"]
            body = {"assistant_id": "noop", "input": {}}
            while not self.stop:
                t0 = time.monotonic()
                r = await http.post(f"/threads/{tid}/runs/wait", json=body)
                if r.status_code != 200:
                    self.errors += 1
                self.samples.append((t0, time.monotonic() - t0))

    def window(self, start: float, end: float) -> list[float]:
        return [s for t, s in self.samples if start <= t < end]


def _template(dsn: str, url: str) -> str:
    import httpx
    import psycopg

    with httpx.Client(base_url=url, timeout=30) as http:
        tid = http.post("/threads", json={}).json()["thread_id"]
        http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "noop", "input": {}})
    with psycopg.connect(dsn) as conn:
        n = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s",
                         (tid,)).fetchone()[0]
    assert n > 0, "the template run wrote no checkpoint"
    return str(tid)


def _left(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return int(conn.execute("SELECT count(*) FROM thread WHERE thread_id LIKE %s",
                                (PREFIX + "%",)).fetchone()[0])


async def _rounds(args: argparse.Namespace, dsn: str, url: str, tpl: str) -> dict[str, Any]:
    import psycopg

    load = Load(url, args.clients)
    tasks = [asyncio.create_task(load.client()) for _ in range(args.clients)]
    base: list[float] = []
    swept: list[float] = []
    durations: list[float] = []
    base_span = sweep_span = 0.0
    try:
        for r in range(args.rounds):
            with psycopg.connect(dsn, autocommit=True) as conn:
                t0 = time.monotonic()
                conn.execute(SEED, {"tpl": tpl, "prefix": PREFIX, "round": str(r),
                                    "threads": args.threads, "per": args.checkpoints})
                n = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id LIKE %s",
                                 (PREFIX + "%",)).fetchone()[0]
                print(f"   round {r}: seeded {n} checkpoints in "
                      f"{time.monotonic() - t0:.1f} s", flush=True)
                await asyncio.sleep(args.settle)
                b0 = time.monotonic()
                while time.monotonic() - b0 < args.window:
                    await asyncio.to_thread(_left, dsn)  # the same poll as the sweep window
                    await asyncio.sleep(0.1)
                b1 = time.monotonic()
                conn.execute("UPDATE thread SET expires_at = now() - interval '1 second' "
                             "WHERE thread_id LIKE %s", (PREFIX + "%",))
            while await asyncio.to_thread(_left, dsn):  # noqa: ASYNC110  poll the database
                await asyncio.sleep(0.1)
            s1 = time.monotonic()
            base += load.window(b0, b1)
            swept += load.window(b1, s1)
            base_span += b1 - b0
            sweep_span += s1 - b1
            durations.append(s1 - b1)
            print(f"   round {r}: swept in {s1 - b1:.2f} s; p99 baseline "
                  f"{pct(load.window(b0, b1), 99) * 1e3:.1f} ms, during sweep "
                  f"{pct(load.window(b1, s1), 99) * 1e3:.1f} ms", flush=True)
    finally:
        load.stop = True
        await asyncio.gather(*tasks, return_exceptions=True)
    per_round = args.threads * args.checkpoints
    return {
        "clients": args.clients, "rounds": args.rounds,
        "checkpoints_per_round": per_round, "errors": load.errors,
        "baseline": {"n": len(base), "p50_ms": pct(base, 50) * 1e3,
                     "p99_ms": pct(base, 99) * 1e3, "rps": len(base) / base_span},
        "sweep": {"n": len(swept), "p50_ms": pct(swept, 50) * 1e3,
                  "p99_ms": pct(swept, 99) * 1e3, "rps": len(swept) / sweep_span},
        "p99_ratio": pct(swept, 99) / pct(base, 99),
        "sweep_s": durations,
        "checkpoints_per_s": per_round / (sum(durations) / len(durations)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("AEGRA_BENCH_DATABASE_URL"))
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--checkpoints", type=int, default=100, help="per thread")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=8.0, help="baseline seconds")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=None, help="[sweeper] batch_size")
    parser.add_argument("--pause", type=float, default=None, help="[sweeper] pause_s")
    parser.add_argument("--max-duty", type=float, default=None, help="[sweeper] max_duty")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with Postgres(args.database_url) as pg, tempfile.TemporaryDirectory() as tmp:
        dsn = pg.create_database(DB)
        server = Server(Path(tmp), dsn, 1.0)
        (Path(tmp) / "aegra.json").write_text(json.dumps(
            {"graphs": {"noop": f"{BENCH / 'graphs.py'}:noop"}}))
        server.env["AEGRA__SWEEPER__INTERVAL_S"] = "0.5"
        if args.batch_size is not None:
            server.env["AEGRA__SWEEPER__BATCH_SIZE"] = str(args.batch_size)
        if args.pause is not None:
            server.env["AEGRA__SWEEPER__PAUSE_S"] = str(args.pause)
        if args.max_duty is not None:
            server.env["AEGRA__SWEEPER__MAX_DUTY"] = str(args.max_duty)
        server.start()
        try:
            with phase("template checkpoint"):
                tpl = _template(dsn, server.url)
            with phase(f"{args.rounds} rounds: baseline window, then a sweep of "
                       f"{args.threads * args.checkpoints} checkpoints"):
                result = asyncio.run(_rounds(args, dsn, server.url, tpl))
        finally:
            server.stop()
            pg.drop_database(DB)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
