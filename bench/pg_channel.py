"""Cost of the PostgreSQL channel's run event streams (issue 11). A script, not a test.

Starts its own PostgreSQL (embedded, unless ``--database-url``) and, each with its own
database, three one-instance set-ups serving ``bench/chaos_graphs.py``: ``memory`` (the
default single-instance broker), ``redis`` (``REDIS_BROKER_ENABLED``, a private
redis-server) and ``postgres`` (``AEGRA_CHANNEL=postgres``: every batch of events is a
transaction + NOTIFY, every stream reads the table after each notified batch). The
services and the fleet come from ``chaos.py``.

Each run of the ``events`` graph (``--events`` custom events, and 1 for the baseline) is
streamed by ``R`` clients: one ``runs.stream`` that creates it, and ``R - 1``
``join_stream`` clients that join it as soon as its run id is known (they replay from
the start, then follow live). For R in ``--readers`` (default 1 and 4), set-ups
interleaved in rounds (order reversed every other round), ``--runs`` runs per batch,
``--concurrent`` at a time. CPU per batch, utime+stime from /proc:

  server    the ``aegra serve`` process
  pg        the PostgreSQL backends connected to the set-up's database (pg_stat_activity)
  redis     the set-up's redis-server

Reported per (set-up, R): the marginal CPU per *produced* event (big batch minus 1-event
batch, divided by the extra events of one stream), median over rounds, and per received
event (divided by R). Loopback only, bounded.
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251  a load generator, not the server
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chaos  # noqa: E402
from chaos import Fleet, Postgres, Redis, base_env, cpu_s, machine_load, say, sdk, sql  # noqa: E402

SETUPS = ("memory", "redis", "postgres")


class Setup:
    def __init__(self, label: str, fleet: Fleet, db: str, admin: str,
                 redis: Redis | None) -> None:
        self.label, self.fleet, self.db, self.admin, self.redis = label, fleet, db, admin, redis
        self.url = fleet.instances[0].url

    def _backends(self) -> dict[int, float]:
        pids = sql(self.admin, "SELECT pid FROM pg_stat_activity WHERE datname = %s",
                   (self.db,))
        return {int(p): cpu_s(int(p)) for (p,) in pids}

    def sample(self) -> dict[str, Any]:
        return {"server": self.fleet.cpu(), "pg": self._backends(),
                "redis": cpu_s(self.redis.proc.pid) if self.redis and self.redis.proc else 0.0}

    def delta(self, before: dict[str, Any]) -> dict[str, float]:
        now = self.sample()
        # Backends that exited meanwhile take their CPU with them (the pools keep theirs).
        pg = sum(c - before["pg"].get(pid, 0.0) for pid, c in now["pg"].items())
        return {"server": now["server"] - before["server"], "pg": pg,
                "redis": now["redis"] - before["redis"]}


async def stream_run(s: Setup, n: int, readers: int) -> int:
    """One run of ``n`` events streamed by ``readers`` clients; custom events received."""
    client = sdk(s.url, timeout=120)
    tid = (await client.threads.create())["thread_id"]
    joined: list[asyncio.Task[int]] = []

    async def join(run_id: str) -> int:
        got = 0
        async for part in client.runs.join_stream(tid, run_id, stream_mode="custom"):
            got += part.event == "custom"
        return got

    got = 0
    async for part in client.runs.stream(tid, "events", input={"n": n},
                                         stream_mode="custom"):
        if part.event == "metadata" and not joined:
            joined = [asyncio.create_task(join(part.data["run_id"]))
                      for _ in range(readers - 1)]
        got += part.event == "custom"
    return got + sum(await asyncio.gather(*joined))


async def batch(s: Setup, n: int, readers: int, runs: int, concurrent: int
                ) -> dict[str, float]:
    sem = asyncio.Semaphore(concurrent)

    async def one() -> int:
        async with sem:
            return await stream_run(s, n, readers)

    before, t0 = s.sample(), time.perf_counter()
    got = sum(await asyncio.gather(*(one() for _ in range(runs))))
    out = s.delta(before)
    out.update(got=got, expected=runs * n * readers, wall=time.perf_counter() - t0)
    return out


async def measure(setups: list[Setup], args: argparse.Namespace) -> dict[str, Any]:
    for s in setups:  # warm-up: imports, pools, first-run caches
        for r in args.readers:
            await stream_run(s, args.events, r)
    rows: dict[str, list[dict[str, Any]]] = {}
    for i in range(args.rounds):
        say(f"\n== round {i + 1}/{args.rounds}; machine {machine_load()}")
        for s in (setups if i % 2 == 0 else setups[::-1]):
            for r in args.readers:
                big = await batch(s, args.events, r, args.runs, args.concurrent)
                small = await batch(s, 1, r, args.runs, args.concurrent)
                if big["got"] != big["expected"] or small["got"] != small["expected"]:
                    raise RuntimeError(f"{s.label} R={r}: received {big['got']}/"
                                       f"{big['expected']} and {small['got']}/"
                                       f"{small['expected']} events")
                extra = (args.events - 1) * args.runs  # produced events
                row = {k: (big[k] - small[k]) / extra * 1e6 for k in ("server", "pg", "redis")}
                row["events_per_s"] = big["got"] / big["wall"]
                rows.setdefault(f"{s.label} R={r}", []).append(row)
                say(f"   {s.label:8} R={r}: server {row['server']:6.0f}, pg {row['pg']:5.0f}, "
                    f"redis {row['redis']:4.0f} µs/produced event; "
                    f"{row['events_per_s']:.0f} received events/s")
    out: dict[str, Any] = {}
    for key, rs in rows.items():
        readers = int(key.rsplit("=", 1)[1])
        med = {k: statistics.median(x[k] for x in rs)
               for k in ("server", "pg", "redis", "events_per_s")}
        med["server_per_received"] = med["server"] / readers
        out[key] = {"median": med, "rounds": rs}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", help="an existing PostgreSQL (admin DSN); default: "
                    "an embedded one")
    ap.add_argument("--setups", default=",".join(SETUPS))
    ap.add_argument("--events", type=int, default=400, help="events per run")
    ap.add_argument("--readers", default="1,4", help="clients per run, comma-separated")
    ap.add_argument("--runs", type=int, default=8, help="runs per batch")
    ap.add_argument("--concurrent", type=int, default=2, help="runs at once")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--source", type=Path,
                    help="run the servers from this checkout's src/ (A/B of a change)")
    ap.add_argument("--baseline", type=Path,
                    help="add a set-up 'postgres-base': the PostgreSQL channel run from this "
                         "tree's src/ (and migrations/), interleaved with the others (A/B)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    args.readers = [int(x) for x in args.readers.split(",")]
    chaos.SOURCE = args.source.resolve() if args.source else None
    labels = [x for x in args.setups.split(",") if x]
    if args.baseline:
        labels.append("postgres-base")
    work = Path(tempfile.mkdtemp(prefix="aegra-pgch-"))
    say(f"{time.strftime('%Y-%m-%d %H:%M:%S')}; machine {machine_load()}; work {work}")
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()},
                               "load_before": machine_load()}
    with Postgres(args.database_url) as pg, contextlib.ExitStack() as stack:
        setups = []
        for label in labels:
            db = f"aegra_pgch_{label.replace('-', '_')}"
            dsn = pg.database(db)
            wd = work / label
            wd.mkdir()
            redis = stack.enter_context(Redis(wd)) if label == "redis" else None
            extra = {"memory": {}, "postgres": {"AEGRA_CHANNEL": "postgres"},
                     "redis": {"REDIS_BROKER_ENABLED": "true",
                               "REDIS_URL": redis.url if redis else ""},
                     "postgres-base": {"AEGRA_CHANNEL": "postgres", "PYTHONPATH": str(
                         (args.baseline or Path()).resolve() / "src")}}[label]
            env = base_env(dsn, LOG_LEVEL="WARNING", **extra)
            fleet = stack.enter_context(Fleet(wd, env, 1))
            setups.append(Setup(label, fleet, db, pg.admin, redis))
            say(f"   {label}: up")
        results["results"] = asyncio.run(measure(setups, args))
    results["load_after"] = machine_load()
    say("\n== medians over rounds: marginal CPU per produced event (µs)")
    say("| set-up | readers | server | server / received event | PostgreSQL backends "
        "| redis-server | received events/s |")
    say("|---|---|---|---|---|---|---|")
    for key, r in results["results"].items():
        m = r["median"]
        label, readers = key.split(" R=")
        say(f"| {label} | {readers} | {m['server']:.0f} | {m['server_per_received']:.0f} "
            f"| {m['pg']:.0f} | {m['redis']:.0f} | {m['events_per_s']:.0f} |")
    say(f"machine before {results['load_before']}, after {results['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
