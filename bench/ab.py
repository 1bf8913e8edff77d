"""A/B: the server's CPU per no-op run for two source trees (or settings), interleaved.

On a shared, noisy machine two separate benchmark runs differ by ±20% on their own; this
script starts both servers at once (each on its own database of one PostgreSQL) and
alternates rounds of sequential no-op ``/threads/{id}/runs/wait`` between them, so load
drift hits both alike. It reports the median server CPU per run of each and their ratio.
Used to measure the proposals in ``bench/README.md``. A script, not a test.

  python bench/ab.py --a-src /tmp/base/src --b-src /tmp/exp/src
  python bench/ab.py --b-env LOG_LEVEL=WARNING           # same tree, another setting
  python bench/ab.py --b-auth                            # B runs bench/auth_trivial.py

A source tree is a copy of the repository's ``src`` (and ``migrations`` beside it);
without ``--a-src``/``--b-src`` the installed package runs.
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251  (a benchmark, not server code)
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Postgres, median, pct  # noqa: E402
from runs import Server  # noqa: E402


async def rounds(servers: dict[str, Server], floors: dict[str, Any],
                 args: argparse.Namespace) -> dict[str, Any]:
    import httpx
    from runs import stream_run

    # The token is sent to both: a noop server ignores it, so only the auth path differs.
    clients = {k: httpx.AsyncClient(base_url=s.url, timeout=60,
                                    headers={"Authorization": "Bearer bench"})
               for k, s in servers.items()}
    paths = {}
    body: dict[str, Any] = {"assistant_id": "noop", "input": {}}
    if args.tokens:
        body = {"assistant_id": "stream", "input": {"tokens": args.tokens},
                "stream_mode": ["messages-tuple"]}

    async def one(k: str) -> int:
        if args.tokens:
            s = await stream_run(clients[k], paths[k], body)
            if s.status != "success":
                raise RuntimeError(s.error or s.status)
            return sum(s.counts.values())
        r = await clients[k].post(paths[k], json=body)
        r.raise_for_status()
        return 1
    try:
        for k, c in clients.items():
            r = await c.post("/threads", json={})
            r.raise_for_status()
            tid = r.json()["thread_id"]
            paths[k] = f"/threads/{tid}/runs/wait" if not args.stateless else "/runs/wait"
            if args.tokens:
                paths[k] = f"/threads/{tid}/runs/stream"
            for _ in range(20):
                await one(k)
        cpu: dict[str, list[float]] = {k: [] for k in [*servers, *floors]}
        lat: dict[str, list[float]] = {k: [] for k in servers}
        for i in range(args.rounds):
            order = list(servers) if i % 2 == 0 else list(reversed(servers))
            for k, proc in floors.items():  # the floor in the same time window
                proc.stdin.write(f"{args.runs}\n")
                proc.stdin.flush()
                cpu[k].append(float(proc.stdout.readline()))
            for k in order:
                c0 = servers[k].cpu()
                units = 0
                for _ in range(args.runs):
                    t = time.perf_counter()
                    units += await one(k)
                    lat[k].append(time.perf_counter() - t)
                # per run, or (--tokens) per streamed event in µs
                scale = 1e6 if args.tokens else 1e3
                cpu[k].append((servers[k].cpu() - c0) / units * scale)
            print(f"   round {i + 1}/{args.rounds}: "
                  + ", ".join(f"{k} {cpu[k][-1]:.2f}" for k in cpu), flush=True)
    finally:
        for c in clients.values():
            await c.aclose()
    out = {k: {"cpu_ms": median(cpu[k]), "rounds": cpu[k],
               "p50_ms": pct(lat[k], 50) * 1e3 if k in lat else float("nan")} for k in cpu}
    for k in servers:  # ratios per round (same window), then their median
        for f in floors:
            out[k][f"ratio_{f}"] = median([a / b for a, b in zip(cpu[k], cpu[f], strict=True)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", help="an existing PostgreSQL; default: embedded")
    for side in ("a", "b"):
        ap.add_argument(f"--{side}-src", help=f"source tree (src folder) of server {side.upper()}")
        ap.add_argument(f"--{side}-env", action="append", default=[], metavar="KEY=VALUE",
                        help=f"extra environment of server {side.upper()} (repeatable)")
    ap.add_argument("--b-auth", action="store_true",
                    help="server B authenticates and authorizes with bench/auth_trivial.py")
    ap.add_argument("--runs", type=int, default=100, help="runs per round and server")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--stateless", action="store_true", help="/runs/wait instead of a thread")
    ap.add_argument("--floor", action="store_true",
                    help="also run floor.py workers (plain asyncio and trio-asyncio) in the "
                    "same rounds and report server/floor ratios; B is optional then")
    ap.add_argument("--tokens", type=int, default=0, help="stream runs of the token graph "
                    "(messages-tuple) with this many chunks; report CPU per event in µs")
    args = ap.parse_args()
    with Postgres(args.database_url) as pg, tempfile.TemporaryDirectory() as wd:
        servers: dict[str, Server] = {}
        floors: dict[str, Any] = {}
        try:
            if args.floor:
                dsn = pg.create_database("aegra_ab_floor")
                for loop in ("asyncio", "bridge"):
                    floors[f"floor-{loop}"] = proc = subprocess.Popen(
                        [sys.executable, str(Path(__file__).parent / "floor.py"), "--worker",
                         loop, "--dsn", dsn], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        text=True)
                    if proc.stdout.readline().strip() != "ready":
                        raise RuntimeError(f"floor worker {loop} did not start")
            sides = (("a", "b") if (args.b_src or args.b_env or args.b_auth or not args.floor)
                     else ("a",))
            for side in sides:
                dsn = pg.create_database(f"aegra_ab_{side}")
                env = dict(e.split("=", 1) for e in getattr(args, f"{side}_env"))
                src = getattr(args, f"{side}_src")
                if src:
                    env["PYTHONPATH"] = str(Path(src).resolve())
                folder = Path(wd) / side
                folder.mkdir()
                auth = (f"{Path(__file__).parent / 'auth_trivial.py'}:auth"
                        if side == "b" and args.b_auth else None)
                servers[side.upper()] = Server(folder, dsn, workers=1, jobs=10,
                                               log_level=env.pop("LOG_LEVEL", "INFO"),
                                               extra_env=env, auth=auth).start()
                print(f"{side.upper()}: pid {servers[side.upper()].pid}, src {src or 'installed'}, "
                      f"env {env}", flush=True)
            res = asyncio.run(rounds(servers, floors, args))
        finally:
            for s in servers.values():
                s.stop()
            for proc in floors.values():
                proc.stdin.close()
                proc.wait(30)
    for k in floors:
        print(f"{k}: {res[k]['cpu_ms']:.2f} ms CPU/run")
    for k in servers:
        for f in floors:
            print(f"{k} / {f}: {res[k][f'ratio_{f}']:.2f}x (median of per-round ratios)")
    if "B" not in res:
        print(f"A: {res['A']['cpu_ms']:.2f} ms CPU/run")
        return
    a, b = res["A"]["cpu_ms"], res["B"]["cpu_ms"]
    unit = "µs CPU/event" if args.tokens else "ms CPU/run"
    print(f"\nA: {a:.2f} {unit} (p50 latency {res['A']['p50_ms']:.1f} ms)")
    print(f"B: {b:.2f} {unit} (p50 latency {res['B']['p50_ms']:.1f} ms)")
    print(f"B - A: {b - a:+.2f} {unit.split()[0]} ({(b - a) / a * 100:+.1f}%)")


if __name__ == "__main__":
    main()
