"""``aegra serve --processes``: closed-loop no-op run throughput, 1 process vs N (issue 11).

Starts one server with ``--processes 1`` and one with ``--processes N`` (default 2), both
with Redis (the multi-process mode needs it) on their own databases, then alternates
equal windows of closed-loop load between them: ``--clients`` clients each POST
``/threads/{id}/runs/wait`` of the no-op graph back to back. Reports runs/s and server
CPU per run (the parent and its children, from /proc) as medians over the rounds, and the
ratio. The load generator runs here, on the same machine: on a small machine its CPU and
PostgreSQL's compete with the server's, which caps the ratio (bench/README.md).

    python bench/processes.py --database-url postgresql://postgres@127.0.0.1:5432/postgres \
        --redis-url redis://127.0.0.1:6379 [--processes 2] [--clients 16] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251  (a benchmark, not server code)
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Postgres, median, self_cpu_s  # noqa: E402
from runs import Server  # noqa: E402


def server(processes: int, workdir: Path, dsn: str, redis_url: str,
           args: argparse.Namespace) -> Server:
    """``bench/runs.py``'s server with ``--processes`` and Redis."""
    workdir.mkdir(parents=True, exist_ok=True)
    return Server(workdir, dsn, workers=args.workers, jobs=args.jobs, log_level="WARNING",
                  extra_env={"REDIS_BROKER_ENABLED": "true", "REDIS_URL": redis_url},
                  processes=processes)


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def window(server: Server, clients: int, seconds: float) -> dict[str, float]:
    """``clients`` closed loops of no-op /runs/wait for ``seconds``: runs/s, CPU per run."""
    import httpx

    body = {"assistant_id": "noop", "input": {}}
    done = errors = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=60,
                                 limits=httpx.Limits(max_connections=None)) as http:
        tids = [(await http.post("/threads", json={})).json()["thread_id"]
                for _ in range(clients)]
        stop_at = time.perf_counter() + seconds

        async def loop(tid: str) -> None:
            nonlocal done, errors
            while time.perf_counter() < stop_at:
                r = await http.post(f"/threads/{tid}/runs/wait", json=body)
                if r.status_code != 200 or "__error__" in r.text:
                    errors += 1
                done += 1

        t0, cpu0, me0, (busy0, all0) = (time.perf_counter(), server.cpu(), self_cpu_s(),
                                        machine_busy())
        await asyncio.gather(*(loop(t) for t in tids))
        wall, cpu = time.perf_counter() - t0, server.cpu() - cpu0
        busy, total = machine_busy()
    return {"runs": done, "errors": errors, "runs_per_s": done / wall,
            "cpu_ms_per_run": cpu / max(done, 1) * 1e3, "cpu_cores": cpu / wall,
            "client_cores": (self_cpu_s() - me0) / wall,
            "machine_busy": (busy - busy0) / max(total - all0, 1)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="aegra-procs-"))
    base = args.redis_url.rstrip("/")
    counts = (1, args.processes)
    with Postgres(args.database_url) as pg:
        servers = [server(n, work / f"p{n}", pg.create_database(f"aegra_bench_p{n}"),
                         f"{base}/{10 + n}", args) for n in counts]
        rounds: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
        try:
            for s in servers:
                s.start()
            for s in servers:  # warm-up: imports, pools, JIT-free but cache-warm
                await window(s, args.clients, 2)
            for k in range(args.rounds):  # alternate: drift on a shared machine hits both
                for n, s in zip(counts, servers, strict=True):
                    r = await window(s, args.clients, args.seconds)
                    rounds[n].append(r)
                    print(f"round {k + 1}/{args.rounds} --processes {n}: "
                          f"{r['runs_per_s']:.1f} runs/s, {r['cpu_ms_per_run']:.2f} ms "
                          f"CPU/run, server {r['cpu_cores']:.2f} cores, load generator "
                          f"{r['client_cores']:.2f} cores, machine "
                          f"{r['machine_busy']:.0%} busy, {r['errors']} errors",
                          flush=True)
        finally:
            for s in servers:
                s.stop()
            if not pg.embedded:
                for n in counts:
                    pg.drop_database(f"aegra_bench_p{n}")
    out: dict[str, Any] = {
        str(n): {key: median([r[key] for r in rs]) for key in rs[0]}
        for n, rs in rounds.items()}
    out["ratio"] = out[str(args.processes)]["runs_per_s"] / out["1"]["runs_per_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", help="an existing PostgreSQL (superuser DSN); "
                    "default: an embedded pgserver")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379",
                    help="a Redis without a database number; db 11 and 10+N are used")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=250)
    ap.add_argument("--workdir")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    results = asyncio.run(run(args))
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
