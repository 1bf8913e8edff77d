"""Benchmark cron firing lateness on one ``aegra serve`` (issue 6, item 5). A script, not
a test.

Starts its own PostgreSQL (embedded pgserver, unless ``--database-url``) and one ``aegra
serve`` serving ``bench/graphs.py:noop``, creates ``--crons`` (1,000) enabled stateless
crons through the HTTP API (created disabled, then enabled, so no first runs) and lets
them fire for ``--minutes``. Lateness is the time from an occurrence's scheduled instant
to the ``created_at`` of the run the ticker made for it (the ticker's transaction time),
read back from PostgreSQL: every fired run keeps its occurrence in
``execution_params.cron.scheduled_at``. Crons use ``on_run_completed="keep"`` so the run
rows survive (a deleted ephemeral thread takes its runs with it).

Two shapes of load:

  spread  cron i fires at second i % 60 of every minute (6-field schedules, so
          CRON_ALLOW_SECONDS_SCHEDULE=true): ~17 firings a second, steadily
  burst   every cron is ``* * * * *``: 1,000 firings at each minute boundary

Reported per shape: occurrences fired (and any fired twice), lateness p50/p99/max (note
``created_at`` is the ticker transaction's start, so a batch shares one value), the time
to the run's start (commit, queue, a free worker) and end (execution included) p50/p99,
server CPU per firing.
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251  (a load generator, not server code)
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH, Postgres, cpu_s, pct, phase  # noqa: E402

DB = "aegra_bench_cron"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, workdir: Path, dsn: str, tick_s: float) -> None:
        self.port = free_port()
        self.log_path = workdir / f"server-{self.port}.log"
        (workdir / "aegra.json").write_text(json.dumps(
            {"graphs": {"noop": f"{BENCH / 'graphs.py'}:noop"}}))
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AEGRA_", "POSTGRES_", "REDIS_", "WORKER_",
                                         "CRON_", "LANGGRAPH_"))}
        self.env.update({"DATABASE_URL": dsn, "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING",
                         "CRON_ALLOW_SECONDS_SCHEDULE": "true", "CRON_MAX_PER_USER": "0",
                         "AEGRA__CRON__TICK_INTERVAL_S": str(tick_s),
                         "PYTHONUNBUFFERED": "1"})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        import httpx

        log = open(self.log_path, "ab")  # noqa: SIM115  closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aegra", "serve", "--host", "127.0.0.1",
             "--port", str(self.port)], cwd=self.workdir, env=self.env, stdout=log,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()[-4000:]}")
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server not ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def _each(items: list[Any], fn: Any, concurrency: int = 16) -> list[Any]:
    sem = asyncio.Semaphore(concurrency)

    async def one(item: Any) -> Any:
        async with sem:
            return await fn(item)
    return await asyncio.gather(*(one(i) for i in items))


async def _make_crons(url: str, schedules: list[str]) -> list[str]:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        async def create(schedule: str) -> str:
            r = await http.post("/runs/crons", json={
                "assistant_id": "noop", "schedule": schedule, "input": {},
                "enabled": False, "on_run_completed": "keep"})
            r.raise_for_status()
            return str(r.json()["cron_id"])
        ids = await _each(schedules, create)

        async def enable(cron_id: str) -> None:
            (await http.patch(f"/runs/crons/{cron_id}", json={"enabled": True})
             ).raise_for_status()
        await _each(ids, enable)
        return ids


async def _disable(url: str, ids: list[str]) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        async def off(cron_id: str) -> None:
            (await http.patch(f"/runs/crons/{cron_id}", json={"enabled": False})
             ).raise_for_status()
        await _each(ids, off)


def _measure(dsn: str, since: dt.datetime) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """SELECT cron_id, (execution_params -> 'cron' ->> 'scheduled_at')::timestamptz,
                      created_at, ended_at, started_at
               FROM runs WHERE cron_id IS NOT NULL AND created_at >= %s
                 AND execution_params -> 'cron' ->> 'scheduled_at' IS NOT NULL""",
            (since,)).fetchall()
    late = [(r[2] - r[1]).total_seconds() for r in rows]
    ended = [(r[3] - r[1]).total_seconds() for r in rows if r[3] is not None]
    started = [(r[4] - r[1]).total_seconds() for r in rows if r[4] is not None]
    twice = len(rows) - len({(r[0], r[1]) for r in rows})
    return {"fired": len(rows), "fired_twice": twice, "finished": len(ended),
            "late_p50_ms": pct(late, 50) * 1000, "late_p99_ms": pct(late, 99) * 1000,
            "late_max_ms": max(late, default=float("nan")) * 1000,
            "start_p50_ms": pct(started, 50) * 1000, "start_p99_ms": pct(started, 99) * 1000,
            "end_p50_ms": pct(ended, 50) * 1000, "end_p99_ms": pct(ended, 99) * 1000}


def run_shape(name: str, server: Server, dsn: str, schedules: list[str], minutes: float,
              warmup_s: float) -> dict[str, Any]:
    with phase(f"{name}: {len(schedules)} crons for {minutes:g} min"):
        ids = asyncio.run(_make_crons(server.url, schedules))
        # Enabling 1,000 crons through the API is itself load: measure from a little later.
        time.sleep(warmup_s)
        since = dt.datetime.now(dt.UTC)
        assert server.proc is not None
        cpu0 = cpu_s(server.proc.pid)
        time.sleep(minutes * 60)
        asyncio.run(_disable(server.url, ids))
        time.sleep(5)  # let the last runs finish
        cpu = cpu_s(server.proc.pid) - cpu0
        result = _measure(dsn, since)
        result["server_cpu_ms_per_firing"] = cpu * 1000 / max(1, result["fired"])
        print("   " + json.dumps({k: round(v, 1) if isinstance(v, float) else v
                                  for k, v in result.items()}), flush=True)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("AEGRA_BENCH_DATABASE_URL"))
    parser.add_argument("--crons", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=15.0,
                        help="seconds between enabling the crons and measuring")
    parser.add_argument("--tick", type=float, default=1.0, help="cron.tick_interval_s")
    parser.add_argument("--shapes", default="spread,burst")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with Postgres(args.database_url) as pg, tempfile.TemporaryDirectory() as tmp:
        shapes = {
            "spread": [f"{i % 60} * * * * *" for i in range(args.crons)],
            "burst": ["* * * * *"] * args.crons,
        }
        for name in args.shapes.split(","):
            dsn = pg.create_database(DB)  # a fresh database per shape
            server = Server(Path(tmp), dsn, args.tick).start()
            try:
                results[name] = run_shape(name, server, dsn, shapes[name], args.minutes,
                                          args.warmup)
            finally:
                server.stop()
                pg.drop_database(DB)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
