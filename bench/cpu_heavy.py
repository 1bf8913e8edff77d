"""A CPU-heavy graph at 200 concurrent runs: adaptive vs fixed capacity (issue 11).

Two ``aegra serve`` servers on one PostgreSQL, the product's defaults (``WORKER_COUNT=3``,
``N_JOBS_PER_WORKER=10``) with ``bench/graphs.py:spin`` (one synchronous node that burns
``--ms`` of CPU, 50 by default; ``--graph spin_async``: the same as an async node):
``adaptive`` (the default ceiling) and ``fixed`` (``N_JOBS_PER_WORKER_MAX=10``: the
capacity before issue 11, 30 runs at once). Each round
gives each server, back to back, ``--runs`` background runs created at once, then joins
them all. Meanwhile it samples the server's ``aegra_event_loop_lag_seconds`` and
``aegra_worker_capacity`` from ``/metrics`` and times ``GET /ok`` every 0.1 s. Reported
per server (medians over rounds; lag and /ok percentiles over all samples):

- throughput: runs / (first create -> last run final);
- loop lag p50 / p99 / max, against the systemd watchdog (``WatchdogSec`` of
  ``deploy/systemd/aegra.service``, 30 s) and the lag warning (1 s);
- ``GET /ok`` latency p50 / p99 (what a health check or a new request sees);
- leases lost (``lease.lost`` log lines) and runs executed more than once (``attempt``
  > 1), runs not ``success``; capacity reached.

    python bench/cpu_heavy.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251  (a benchmark, not server code)
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Postgres, median, pct, with_db  # noqa: E402
from runs import Server  # noqa: E402

WATCHDOG_S = 30.0  # deploy/systemd/aegra.service WatchdogSec
LAG_WARN_S = 1.0  # the watchdog's loop.lag warning
_GAUGE = re.compile(r"^(aegra_event_loop_lag_seconds|aegra_worker_capacity) (\S+)$", re.M)


async def _sampler(http: Any, stop: asyncio.Event, out: dict[str, list[float]]) -> None:
    last_metrics = 0.0
    while not stop.is_set():
        t0 = time.perf_counter()
        await http.get("/ok")
        out["ok_s"].append(time.perf_counter() - t0)
        if t0 - last_metrics >= 0.5:  # the watchdog measures every 0.5 s
            last_metrics = t0
            for name, value in _GAUGE.findall((await http.get("/metrics")).text):
                out["lag_s" if name.endswith("seconds") else "capacity"].append(float(value))
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except TimeoutError:
            pass


async def burst(server: Server, tids: list[str], ms: float, graph: str) -> dict[str, Any]:
    """``len(tids)`` runs created at once, then joined; samples while they run."""
    import httpx

    samples: dict[str, list[float]] = {"ok_s": [], "lag_s": [], "capacity": []}
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=server.url, timeout=600,
                                 limits=httpx.Limits(max_connections=None)) as http, \
            httpx.AsyncClient(base_url=server.url, timeout=60) as probe:
        sampler = asyncio.create_task(_sampler(probe, stop, samples))
        t0 = time.perf_counter()

        async def one(tid: str) -> str:
            r = await http.post(f"/threads/{tid}/runs",
                                json={"assistant_id": graph, "input": {"ms": ms}})
            r.raise_for_status()
            rid = r.json()["run_id"]
            await http.get(f"/threads/{tid}/runs/{rid}/join")
            return str(rid)

        rids = await asyncio.gather(*(one(t) for t in tids))
        wall = time.perf_counter() - t0
        stop.set()
        await sampler
    return {"rids": rids, "wall_s": wall, "runs_per_s": len(tids) / wall, **samples}


def outcome(pg: Postgres, dbname: str, rids: list[str]) -> dict[str, int]:
    import psycopg

    with psycopg.connect(with_db(pg.admin_dsn, dbname)) as conn:
        rows = conn.execute("SELECT status, attempt FROM runs WHERE run_id = ANY(%s)",
                            (rids,)).fetchall()
    return {"not_success": sum(1 for s, _ in rows if s != "success") + len(rids) - len(rows),
            "attempt_gt_1": sum(1 for _, a in rows if a > 1)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    work = Path(args.workdir or tempfile.mkdtemp(prefix="aegra-cpu-heavy-"))
    modes = {"adaptive": {}, "fixed": {"N_JOBS_PER_WORKER_MAX": str(args.jobs)}}
    results: dict[str, Any] = {m: [] for m in modes}
    with Postgres(args.database_url) as pg:
        servers: dict[str, Server] = {}
        try:
            for mode, env in modes.items():
                folder = work / mode
                folder.mkdir(parents=True, exist_ok=True)
                dsn = pg.create_database(f"aegra_bench_{mode}")
                servers[mode] = Server(folder, dsn, workers=args.workers, jobs=args.jobs,
                                       log_level="WARNING", extra_env=env).start()
            tids: dict[str, list[str]] = {}
            for mode, s in servers.items():
                async with httpx.AsyncClient(base_url=s.url, timeout=60) as http:
                    tids[mode] = [(await http.post("/threads", json={})).json()["thread_id"]
                                  for _ in range(args.runs)]
                await burst(s, tids[mode][:20], args.ms, args.graph)  # warm-up
            for k in range(args.rounds):  # alternate: drift on a shared machine hits both
                for mode, s in servers.items():
                    r = await burst(s, tids[mode], args.ms, args.graph)
                    r.update(outcome(pg, f"aegra_bench_{mode}", r.pop("rids")))
                    results[mode].append(r)
                    print(f"round {k + 1}/{args.rounds} {mode}: {r['runs_per_s']:.1f} runs/s "
                          f"({r['wall_s']:.1f} s), loop lag p99 {pct(r['lag_s'], 99):.3f} s "
                          f"max {max(r['lag_s'], default=0):.3f} s, /ok p99 "
                          f"{pct(r['ok_s'], 99) * 1e3:.0f} ms, capacity up to "
                          f"{max(r['capacity'], default=0):.0f}, not success "
                          f"{r['not_success']}, attempt>1 {r['attempt_gt_1']}", flush=True)
        finally:
            for s in servers.values():
                s.stop()
            if not pg.embedded:
                for mode in modes:
                    pg.drop_database(f"aegra_bench_{mode}")
    out: dict[str, Any] = {}
    for mode, rounds in results.items():
        lags = [x for r in rounds for x in r["lag_s"]]
        oks = [x for r in rounds for x in r["ok_s"]]
        log = servers[mode].log_path.read_text()
        out[mode] = {
            "runs_per_s": median([r["runs_per_s"] for r in rounds]),
            "lag_p50_s": pct(lags, 50), "lag_p99_s": pct(lags, 99),
            "lag_max_s": max(lags, default=0.0), "lag_samples": len(lags),
            "ok_p50_ms": pct(oks, 50) * 1e3, "ok_p99_ms": pct(oks, 99) * 1e3,
            "capacity_max": max((x for r in rounds for x in r["capacity"]), default=0.0),
            "leases_lost": log.count('"lease.lost"'),
            "lag_warnings": log.count('"loop.lag"'),
            "attempt_gt_1": sum(r["attempt_gt_1"] for r in rounds),
            "not_success": sum(r["not_success"] for r in rounds),
        }
    out["throughput_ratio_adaptive_fixed"] = (out["adaptive"]["runs_per_s"]
                                              / out["fixed"]["runs_per_s"])
    out["watchdog_s"], out["lag_warn_s"] = WATCHDOG_S, LAG_WARN_S
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", help="an existing PostgreSQL (superuser DSN); "
                    "default: an embedded pgserver")
    ap.add_argument("--runs", type=int, default=200, help="runs created at once per round")
    ap.add_argument("--ms", type=float, default=50.0, help="CPU each run's node burns")
    ap.add_argument("--graph", choices=("spin", "spin_async"), default="spin",
                    help="spin: a sync node (LangGraph's thread pool); spin_async: an async "
                    "node that blocks the event loop while it spins")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--workdir")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    results = asyncio.run(run(args))
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
