"""Benchmark the run path of ``aegra serve`` (issue 4, item 7). A script, not a test.

Starts its own PostgreSQL (embedded pgserver, unless ``--database-url``) and its own
``aegra serve`` child process on loopback, serving ``bench/graphs.py`` (``noop`` and
``stream``), then drives it with httpx on asyncio from this process (so the load
generator's CPU is never counted as the server's). Phases (``--phases``, default all):

  wait        sequential /threads/{id}/runs/wait and /runs/wait (no-op): latency p50/p99
  background  background runs (create, then join) from 8 and 32 concurrent clients:
              runs/s from create to terminal status
  sse         sequential /runs/stream (9 tokens): time to the first event and first token
  events      server CPU per streamed event (messages-tuple): runs of 401 and of 1 chunks
  txn         PostgreSQL transactions per no-op run (pg_stat_database delta), and the
              statements of one run (log_statement=all; embedded PostgreSQL only)
  streams     500 and 1,000 concurrent streams of a 2-second run (21 tokens, 0.1 s apart):
              completed, duration p50/p99, first event p50/p99, server RSS
  profile     py-spy (if installed) on the server during background runs: where CPU goes
  rss         RSS per open stream (issue 11, item 3): ``--rss-rounds`` fresh servers and
              databases, each warmed up, then ``--rss-streams`` streams of a run that
              streams one token and holds (``--rss-hold`` s), opened in two halves; server
              VmRSS (median of 5 reads) before, with half and with all of them streaming:
              growth / streams, and the second half's growth / its streams (marginal, free
              of what grows once), medians of rounds. ``--tracemalloc N``: the second
              half's Python allocations by layer, package and site. ``--rss-server-cmd``:
              measure another server the same way (e.g. the reference), started by that
              command in the same folder, ``aegra.json`` and environment; its RSS is
              summed over the process and its children

The server's CPU is read from /proc/<pid>/stat (utime+stime) before and after each phase
and divided by runs or events: the figure that holds on a noisy machine. Every phase is
bounded in count and time and prints its progress. Results are printed as a table and
written as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251  (a benchmark, not server code)
import collections
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    BENCH,
    STATS_FLUSH_S,
    Postgres,
    cpu_s,
    median,
    memory_kb,
    pct,
    phase,
    tree_cpu_s,
    tree_pids,
)

PHASES = ("wait", "background", "sse", "events", "txn", "streams", "profile", "rss")
DB = f"aegra_bench_{os.getpid()}"  # two runs on one PostgreSQL must not drop each other's


# -- the server ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ``python -c`` launcher for ``--profiler cprofile``: the server runs as ``python -m aegra``
# would, with cProfile on a CPU-time clock switched on by SIGUSR1 and dumped by SIGUSR2.
_CPROFILE = """
import cProfile, signal, sys, time
prof = cProfile.Profile(time.process_time)
out = sys.argv.pop(1)
def _on(*_): prof.enable()
def _off(*_):
    prof.disable(); prof.dump_stats(out)
signal.signal(signal.SIGUSR1, _on)
signal.signal(signal.SIGUSR2, _off)
sys.argv[0] = "aegra"
from aegra.cli import main
main()
"""


class Server:
    def __init__(self, workdir: Path, dsn: str, *, workers: int, jobs: int,
                 log_level: str, extra_env: dict[str, str] | None = None,
                 cprofile_out: Path | None = None, auth: str | None = None,
                 processes: int = 1, cmd: str | None = None) -> None:
        self.workdir = workdir
        self.processes = processes
        self.cmd = cmd  # another server's command line ({host}, {port} filled in)
        self.cprofile_out = cprofile_out
        self.port = free_port()
        self.log_path = workdir / f"server-{self.port}.log"
        graphs = BENCH / "graphs.py"
        project: dict[str, Any] = {"graphs": {
            "noop": f"{graphs}:noop", "stream": f"{graphs}:stream", "spin": f"{graphs}:spin",
            "spin_async": f"{graphs}:spin_async"}}
        if auth is not None:
            project["auth"] = {"path": auth}
        (workdir / "aegra.json").write_text(json.dumps(project))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AEGRA_", "POSTGRES_", "REDIS_", "WORKER_", "LANGGRAPH_"))}
        env.update({
            "DATABASE_URL": dsn, "LOG_FORMAT": "json", "LOG_LEVEL": log_level,
            "WORKER_COUNT": str(workers), "N_JOBS_PER_WORKER": str(jobs),
            "WORKER_DRAIN_TIMEOUT": "5", "PYTHONUNBUFFERED": "1",
        })
        env.update(extra_env or {})
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Server:
        import httpx

        log = open(self.log_path, "ab")  # noqa: SIM115  closed with the process
        head = [sys.executable, "-m", "aegra"]
        if self.cprofile_out is not None:
            head = [sys.executable, "-c", _CPROFILE, str(self.cprofile_out)]
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.cmd is not None:
            head, args = [], [a.format(host="127.0.0.1", port=self.port)
                              for a in shlex.split(self.cmd)]
        env = dict(self.env)
        notify = None
        if self.processes > 1:
            # The parent sends READY=1 once every child has: listen as systemd would.
            args += ["--processes", str(self.processes)]
            name = f"aegra-bench-{os.getpid()}-{self.port}"
            notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind("\0" + name)
            notify.setblocking(False)
            env["NOTIFY_SOCKET"] = "@" + name
        self.proc = subprocess.Popen([*head, *args], cwd=self.workdir, env=env, stdout=log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        ready = notify is None
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited:\n{self.log_path.read_text()[-4000:]}")
                while not ready:
                    try:
                        ready = notify.recv(4096) == b"READY=1"  # type: ignore[union-attr]
                    except BlockingIOError:
                        break
                try:
                    if ready and httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        finally:
            if notify is not None:
                notify.close()
        raise RuntimeError(f"server not ready:\n{self.log_path.read_text()[-4000:]}")

    def cpu(self) -> float:
        """The server's CPU; with ``--processes``, the parent's and its children's."""
        return cpu_s(self.pid) if self.processes == 1 else tree_cpu_s(self.pid)

    def rss_kb(self) -> int:
        """Resident memory; with ``--processes`` or another server's command, summed over
        the parent and children."""
        if self.processes == 1 and self.cmd is None:
            return memory_kb(self.pid)["VmRSS"]
        return sum(memory_kb(pid)["VmRSS"] for pid in tree_pids(self.pid))

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# -- SSE -------------------------------------------------------------------------------------------
class Stream:
    """What one SSE response delivered: timings (perf_counter) and event counts."""

    __slots__ = ("t0", "first", "first_token", "end", "counts", "status", "error", "run_error")

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.first: float | None = None
        self.first_token: float | None = None
        self.end: float | None = None
        self.counts: collections.Counter[str] = collections.Counter()
        self.status: str | None = None
        self.error: str | None = None  # the request or connection failed
        self.run_error: str | None = None  # the run's own `error` event


_EVENT = re.compile(rb"^event: ?(.*)$", re.M)
_DATA = re.compile(rb"^data: ?(.*)$", re.M)


def _take_events(s: Stream, buf: bytes) -> bytes:
    """Count the whole SSE events at the front of ``buf``; return what is left."""
    while True:
        cut = buf.find(b"\n\n")
        if cut < 0:
            return buf
        block, buf = buf[:cut], buf[cut + 2:]
        m = _EVENT.search(block)
        if m is None:
            continue  # keepalive comment
        name = m.group(1).decode()
        now = time.perf_counter()
        if s.first is None:
            s.first = now
        if name.startswith("messages") and s.first_token is None:
            s.first_token = now
        s.counts[name] += 1
        if name == "error":
            d = _DATA.search(block)
            s.run_error = d.group(1).decode()[:200] if d else "?"
        if name == "end":
            s.end = now
            d = _DATA.search(block)
            if d:
                s.status = json.loads(d.group(1)).get("status")


async def stream_run(client: Any, path: str, body: dict[str, Any],
                     s: Stream | None = None) -> Stream:
    """``s``: a Stream the caller watches while it fills (default: a new one)."""
    s = Stream() if s is None else s
    try:
        async with client.stream("POST", path, json=body) as r:
            if r.status_code != 200:
                s.error = f"HTTP {r.status_code}: {(await r.aread())[:200]!r}"
                return s
            buf = b""
            async for part in r.aiter_raw():
                buf = _take_events(s, buf + part)
    except Exception as exc:  # a failed stream is a result, counted as not completed
        s.error = repr(exc)
    return s


async def stream_run_raw(url: str, path: str, body: dict[str, Any]) -> Stream:
    """``stream_run`` on a bare asyncio connection (``--client raw``): HTTP/1.1 written and
    its chunked body read by hand, a few ms of CPU per stream where httpx takes ~20, so
    on a small machine the load generator takes less of the cores the server needs."""
    s = Stream()
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: "
                         f"application/json\r\nContent-Length: {len(payload)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                s.error = f"HTTP {status}: {(head + await reader.read(200))[:200]!r}"
                return s
            if b"transfer-encoding: chunked" not in head.lower():
                raise RuntimeError("expected a chunked response")
            buf = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    break
                buf = _take_events(s, buf + (await reader.readexactly(size + 2))[:-2])
        finally:
            writer.close()
    except Exception as exc:  # a failed stream is a result, counted as not completed
        s.error = repr(exc)
    return s


# -- phases ----------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, server: Server, pg: Postgres) -> None:
        import httpx

        self.args = args
        self.server = server
        self.pg = pg
        self.client = httpx.AsyncClient(
            base_url=server.url, timeout=httpx.Timeout(120.0, connect=60.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=2000))
        self.results: dict[str, Any] = {}

    async def thread(self) -> str:
        r = await self.client.post("/threads", json={})
        r.raise_for_status()
        return str(r.json()["thread_id"])

    async def threads(self, n: int, concurrency: int = 16) -> list[str]:
        out: list[str] = []
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                out.append(await self.thread())
        await asyncio.gather(*(one() for _ in range(n)))
        return out

    def measure(self) -> tuple[float, float, float | None]:
        return time.perf_counter(), self.server.cpu(), self.pg.cpu_s()

    def delta(self, before: tuple[float, float, float | None]) -> dict[str, float]:
        wall, cpu, pgcpu = self.measure()
        out = {"wall_s": wall - before[0], "server_cpu_s": cpu - before[1]}
        if pgcpu is not None and before[2] is not None:
            out["pg_cpu_s"] = pgcpu - before[2]
        return out

    # -- wait --------------------------------------------------------------------------------------
    async def wait_seq(self, path: str, n: int, rounds: int) -> dict[str, Any]:
        """``rounds`` rounds of ``n`` sequential runs: latency over all runs, CPU per run
        as the median of the rounds' figures (the machine is shared and noisy)."""
        body = {"assistant_id": "noop", "input": {}}
        for _ in range(10):  # warm-up
            (await self.client.post(path, json=body)).raise_for_status()
        lat: list[float] = []
        cpu: list[float] = []
        pgcpu: list[float] = []
        for k in range(rounds):
            before = self.measure()
            for _ in range(n):
                t = time.perf_counter()
                r = await self.client.post(path, json=body)
                r.raise_for_status()
                lat.append(time.perf_counter() - t)
                if "__error__" in r.text:
                    raise RuntimeError(r.text)
            d = self.delta(before)
            cpu.append(d["server_cpu_s"] / n * 1e3)
            if "pg_cpu_s" in d:
                pgcpu.append(d["pg_cpu_s"] / n * 1e3)
            print(f"   {path}: round {k + 1}/{rounds}: {cpu[-1]:.2f} ms server CPU/run",
                  flush=True)
        return {"runs": n * rounds, "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3,
                "mean_ms": sum(lat) / len(lat) * 1e3, "rounds_cpu_ms": cpu,
                "server_cpu_per_run_ms": median(cpu),
                **({"pg_cpu_per_run_ms": median(pgcpu)} if pgcpu else {})}

    async def http_baseline(self, n: int) -> dict[str, Any]:
        """CPU of the server per trivial request (GET /ok): the HTTP stack's share."""
        for _ in range(20):
            (await self.client.get("/ok")).raise_for_status()
        before = self.measure()
        for _ in range(n):
            (await self.client.get("/ok")).raise_for_status()
        d = self.delta(before)
        return {"requests": n, "server_cpu_per_request_ms": d["server_cpu_s"] / n * 1e3}

    async def phase_wait(self) -> None:
        n, rounds = self.args.seq_runs, self.args.rounds
        with phase(f"wait: {rounds} x {n} sequential no-op /runs/wait, stateful then "
                   "stateless; GET /ok for the HTTP share"):
            r = self.results["http_ok"] = await self.http_baseline(1000)
            print(f"   GET /ok: {r['server_cpu_per_request_ms']:.2f} ms server CPU/request",
                  flush=True)
            tid = await self.thread()
            self.results["wait_stateful"] = await self.wait_seq(
                f"/threads/{tid}/runs/wait", n, rounds)
            self.results["wait_stateless"] = await self.wait_seq("/runs/wait", n, rounds)
            for key in ("wait_stateful", "wait_stateless"):
                r = self.results[key]
                print(f"   {key}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, server "
                      f"CPU {r['server_cpu_per_run_ms']:.2f} ms/run (median of rounds)",
                      flush=True)

    # -- background --------------------------------------------------------------------------------
    async def background(self, clients: int, total: int) -> dict[str, Any]:
        tids = await self.threads(clients)
        body = {"assistant_id": "noop", "input": {}}
        per = total // clients
        lat: list[float] = []
        errors = 0
        done = 0

        async def client(tid: str) -> None:
            nonlocal errors, done
            for _ in range(per):
                t = time.perf_counter()
                r = await self.client.post(f"/threads/{tid}/runs", json=body)
                r.raise_for_status()
                run_id = r.json()["run_id"]
                j = await self.client.get(f"/threads/{tid}/runs/{run_id}/join")
                if j.status_code != 200 or "__error__" in j.text:
                    errors += 1
                lat.append(time.perf_counter() - t)
                done += 1

        async def progress() -> None:
            while True:
                await asyncio.sleep(2)
                print(f"   {clients} clients: {done}/{per * clients}", flush=True)

        ticker = asyncio.create_task(progress())
        before = self.measure()
        await asyncio.gather(*(client(t) for t in tids))
        d = self.delta(before)
        ticker.cancel()
        n = per * clients
        return {"clients": clients, "runs": n, "errors": errors,
                "runs_per_s": n / d["wall_s"], "p50_ms": pct(lat, 50) * 1e3,
                "p99_ms": pct(lat, 99) * 1e3, **d,
                "server_cpu_per_run_ms": d["server_cpu_s"] / n * 1e3,
                **({"pg_cpu_per_run_ms": d["pg_cpu_s"] / n * 1e3} if "pg_cpu_s" in d else {})}

    async def phase_background(self) -> None:
        for clients, total in ((8, self.args.bg_runs), (32, self.args.bg_runs * 2)):
            with phase(f"background: {total} no-op runs (create + join), {clients} clients"):
                r = self.results[f"background_{clients}"] = await self.background(clients, total)
                print(f"   {r['runs_per_s']:.0f} runs/s, create->terminal p50 "
                      f"{r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms, server CPU "
                      f"{r['server_cpu_per_run_ms']:.2f} ms/run, errors {r['errors']}",
                      flush=True)

    # -- sse ---------------------------------------------------------------------------------------
    async def phase_sse(self) -> None:
        n = self.args.sse_runs
        with phase(f"sse: {n} sequential stateful streams (9 tokens, messages-tuple)"):
            tid = await self.thread()
            body = {"assistant_id": "stream", "input": {"tokens": 9},
                    "stream_mode": ["messages-tuple"]}
            for _ in range(5):
                await stream_run(self.client, f"/threads/{tid}/runs/stream", body)
            first, token, total = [], [], []
            before = self.measure()
            for _ in range(n):
                s = await stream_run(self.client, f"/threads/{tid}/runs/stream", body)
                if s.error or s.first is None or s.end is None:
                    raise RuntimeError(f"stream failed: {s.error}")
                first.append(s.first - s.t0)
                token.append((s.first_token or s.end) - s.t0)
                total.append(s.end - s.t0)
            d = self.delta(before)
            r = self.results["sse"] = {
                "runs": n, "first_event_p50_ms": pct(first, 50) * 1e3,
                "first_event_p99_ms": pct(first, 99) * 1e3,
                "first_token_p50_ms": pct(token, 50) * 1e3,
                "total_p50_ms": pct(total, 50) * 1e3, **d,
                "server_cpu_per_run_ms": d["server_cpu_s"] / n * 1e3}
            print(f"   first event p50 {r['first_event_p50_ms']:.1f} ms p99 "
                  f"{r['first_event_p99_ms']:.1f} ms; first token p50 "
                  f"{r['first_token_p50_ms']:.1f} ms", flush=True)

    # -- events ------------------------------------------------------------------------------------
    async def streamed(self, tokens: int, runs: int, clients: int) -> dict[str, Any]:
        tids = await self.threads(clients)
        body = {"assistant_id": "stream", "input": {"tokens": tokens},
                "stream_mode": ["messages-tuple"]}
        events = 0
        per = runs // clients

        async def client(tid: str) -> None:
            nonlocal events
            for _ in range(per):
                s = await stream_run(self.client, f"/threads/{tid}/runs/stream", body)
                if s.error or s.status != "success":
                    raise RuntimeError(f"stream failed: {s.error} {s.status}")
                events += sum(s.counts.values())
        await stream_run(self.client, f"/threads/{tids[0]}/runs/stream", body)  # warm-up
        before = self.measure()
        await asyncio.gather(*(client(t) for t in tids))
        d = self.delta(before)
        return {"tokens": tokens, "runs": per * clients, "events": events, **d}

    async def paced(self, tokens: int, delay: float, n: int) -> dict[str, Any]:
        """``n`` streams at once of ``tokens`` chunks ``delay`` s apart (a model's pace)."""
        tids = await self.threads(n)
        body = {"assistant_id": "stream", "input": {"tokens": tokens, "delay": delay},
                "stream_mode": ["messages-tuple"]}
        before = self.measure()
        got = await asyncio.gather(*(stream_run(self.client, f"/threads/{t}/runs/stream", body)
                                     for t in tids))
        d = self.delta(before)
        if any(s.status != "success" for s in got):
            raise RuntimeError("a paced stream failed")
        return {"events": sum(sum(s.counts.values()) for s in got), **d}

    async def phase_events(self) -> None:
        big, runs = self.args.event_tokens, self.args.event_runs
        with phase(f"events: {runs} streams of {big} and of 1 chunks (4 clients)"):
            small = await self.streamed(1, runs, 4)
            large = await self.streamed(big, runs, 4)
            d_cpu = large["server_cpu_s"] - small["server_cpu_s"]
            d_ev = large["events"] - small["events"]
            r = self.results["events"] = {
                "small": small, "large": large,
                "server_cpu_per_event_us": large["server_cpu_s"] / large["events"] * 1e6,
                "server_marginal_cpu_per_event_us": d_cpu / d_ev * 1e6,
                "events_per_s": large["events"] / large["wall_s"]}
            print(f"   {large['events']} events in {large['wall_s']:.1f} s; server CPU "
                  f"{r['server_cpu_per_event_us']:.0f} µs/event overall, "
                  f"{r['server_marginal_cpu_per_event_us']:.0f} µs/event marginal", flush=True)
            # Paced: 20 streams at once, 41 chunks 0.05 s apart, against 20 of 1 chunk.
            paced = []
            for _ in range(self.args.rounds):
                one = await self.paced(1, 0.0, 20)
                many = await self.paced(41, 0.05, 20)
                paced.append((many["server_cpu_s"] - one["server_cpu_s"])
                             / (many["events"] - one["events"]) * 1e6)
            r["paced_marginal_cpu_per_event_us"] = median(paced)
            r["paced_rounds_us"] = paced
            print(f"   paced (20 streams, chunks 0.05 s apart): {median(paced):.0f} µs/event "
                  f"marginal (rounds {', '.join(f'{p:.0f}' for p in paced)})", flush=True)

    # -- txn ---------------------------------------------------------------------------------------
    async def txn_count(self, path: str, n: int) -> dict[str, Any]:
        body = {"assistant_id": "noop", "input": {}}
        for _ in range(5):
            (await self.client.post(path, json=body)).raise_for_status()
        await asyncio.sleep(STATS_FLUSH_S)
        x0, t0 = self.pg.xacts(DB), time.monotonic()
        for _ in range(n):
            (await self.client.post(path, json=body)).raise_for_status()
        await asyncio.sleep(STATS_FLUSH_S)
        x1, t1 = self.pg.xacts(DB), time.monotonic()
        # Background actors (cron ticker, reaper) commit on their own clock: subtract the
        # rate measured on the idle server over the same window.
        background = self.idle_xacts_per_s * (t1 - t0)
        return {"runs": n, "xacts": x1 - x0, "window_s": t1 - t0,
                "background_xacts": background, "per_run_raw": (x1 - x0) / n,
                "per_run": (x1 - x0 - background) / n}

    async def phase_txn(self) -> None:
        n = self.args.txn_runs
        with phase(f"txn: PostgreSQL transactions of {n} no-op runs (stats settle "
                   f"{STATS_FLUSH_S:.0f} s each)"):
            await asyncio.sleep(STATS_FLUSH_S)
            x0, t0 = self.pg.xacts(DB), time.monotonic()
            await asyncio.sleep(2 * STATS_FLUSH_S)
            idle = self.pg.xacts(DB) - x0
            self.idle_xacts_per_s = idle / (time.monotonic() - t0)
            tid = await self.thread()
            stateful = await self.txn_count(f"/threads/{tid}/runs/wait", n)
            stateless = await self.txn_count("/runs/wait", n)
            self.results["txn"] = {"idle_xacts_per_s": self.idle_xacts_per_s,
                                   "stateful": stateful,
                                   "stateless": stateless}
            print(f"   idle: {self.idle_xacts_per_s:.2f} xacts/s (background actors); "
                  f"stateful {stateful['per_run']:.2f}/run (raw {stateful['per_run_raw']:.2f}); "
                  f"stateless {stateless['per_run']:.2f}/run (raw "
                  f"{stateless['per_run_raw']:.2f})", flush=True)
            if self.pg.embedded:
                self.results["statements"] = await self.statements(tid)

    async def statements(self, tid: str) -> dict[str, Any]:
        """Every statement of one no-op run (stateful, then stateless), from the log."""
        import psycopg
        from _common import with_db

        log_path = self.pg.log_path
        assert log_path is not None
        body = {"assistant_id": "noop", "input": {}}
        self.pg.log_statements(True)
        await asyncio.sleep(0.5)
        out: dict[str, Any] = {}
        try:
            for key, path in (("stateful", f"/threads/{tid}/runs/wait"),
                              ("stateless", "/runs/wait")):
                start = log_path.stat().st_size
                with psycopg.connect(with_db(self.pg.admin_dsn, DB), autocommit=True) as c:
                    c.execute("SELECT 'bench-mark'")
                (await self.client.post(path, json=body)).raise_for_status()
                await asyncio.sleep(0.3)  # the server's after-finish work (thread delete)
                with open(log_path, "rb") as f:  # noqa: ASYNC230  a bench, not the server
                    f.seek(start)
                    text = f.read().decode(errors="replace")
                out[key] = parse_statements(text)
        finally:
            self.pg.log_statements(False)
        for key, stmts in list(out.items()):
            out[f"{key}_xacts"] = xacts_of(stmts)
            print(f"   {key}: {len(stmts)} statements in {xacts_of(stmts)} transactions",
                  flush=True)
        return out

    # -- streams -----------------------------------------------------------------------------------
    async def concurrent_streams(self, n: int, tids: list[str]) -> dict[str, Any]:
        body = {"assistant_id": "stream", "input": {"tokens": 21, "delay": 0.1},
                "stream_mode": ["messages-tuple"]}
        expected = 21  # messages-tuple events of graphs.chunks(21)
        peak = {"rss_kb": 0}
        stop = asyncio.Event()
        pid = self.server.pid
        try:  # reset the peak-RSS counter (VmHWM) of the server
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # noqa: ASYNC240
        except OSError:
            pass
        rss0 = self.server.rss_kb()
        results: list[Stream] = []

        async def sample() -> None:
            last = time.monotonic()
            while not stop.is_set():
                peak["rss_kb"] = max(peak["rss_kb"], self.server.rss_kb())
                if time.monotonic() - last > 2:
                    last = time.monotonic()
                    ended = sum(1 for s in results if s.end is not None)
                    print(f"   {n} streams: {ended} ended", flush=True)
                await asyncio.sleep(0.1)

        async def one(tid: str) -> None:
            path = f"/threads/{tid}/runs/stream"
            if self.args.client == "raw":
                s = await stream_run_raw(self.server.url, path, body)
            else:
                s = await stream_run(self.client, path, body)
            results.append(s)

        sampler = asyncio.create_task(sample())
        client_cpu0 = time.process_time()
        before = self.measure()
        try:
            await asyncio.wait_for(asyncio.gather(*(one(t) for t in tids[:n])),
                                   self.args.stream_timeout)
        except TimeoutError:
            print(f"   timed out after {self.args.stream_timeout} s", flush=True)
        d = self.delta(before)
        client_cpu = time.process_time() - client_cpu0
        stop.set()
        await sampler
        ok = [s for s in results if s.end is not None and s.status == "success"
              and s.counts.get("messages", 0) == expected]
        dur = [s.end - s.t0 for s in ok if s.end is not None]
        first = [s.first - s.t0 for s in results if s.first is not None]
        token = [s.first_token - s.t0 for s in results if s.first_token is not None]
        errors = collections.Counter(
            (s.error or s.run_error
             or f"status={s.status} messages={s.counts.get('messages', 0)}")[:160]
            for s in results if s not in ok)
        mem = memory_kb(pid) if self.server.processes == 1 else {}
        events = sum(sum(s.counts.values()) for s in results)
        return {"streams": n, "completed": len(ok), "duration_p50_s": pct(dur, 50),
                "duration_p99_s": pct(dur, 99), "duration_max_s": max(dur, default=0),
                "first_event_p50_ms": pct(first, 50) * 1e3,
                "first_event_p99_ms": pct(first, 99) * 1e3,
                "first_token_p50_ms": pct(token, 50) * 1e3,
                "rss_before_mb": rss0 / 1024, "rss_peak_mb": max(peak["rss_kb"],
                                                                 mem.get("VmHWM", 0)) / 1024,
                "rss_after_mb": self.server.rss_kb() / 1024, "events": events, **d,
                "server_cpu_per_run_ms": d["server_cpu_s"] / n * 1e3,
                "client_cpu_s": client_cpu, "errors": dict(errors.most_common(5))}

    async def phase_streams(self) -> None:
        sizes = [int(x) for x in self.args.stream_counts.split(",") if x]
        with phase(f"streams: {sizes} concurrent 2-second streams (21 tokens, 0.1 s apart)"):
            tids = await self.threads(max(sizes), concurrency=32)
            print(f"   {len(tids)} threads ready", flush=True)
            for n in sizes:
                await asyncio.sleep(2)
                r = self.results[f"streams_{n}"] = await self.concurrent_streams(n, tids)
                print(f"   {n}: completed {r['completed']}/{n}, duration p50 "
                      f"{r['duration_p50_s']:.2f} s p99 {r['duration_p99_s']:.2f} s, first "
                      f"event p50 {r['first_event_p50_ms']:.0f} ms p99 "
                      f"{r['first_event_p99_ms']:.0f} ms, RSS {r['rss_before_mb']:.0f} -> "
                      f"peak {r['rss_peak_mb']:.0f} MB, server CPU "
                      f"{r['server_cpu_per_run_ms']:.1f} ms/run, client CPU "
                      f"{r['client_cpu_s']:.1f} s", flush=True)
                if r["errors"]:
                    print(f"   not completed: {r['errors']}", flush=True)

    # -- profile -----------------------------------------------------------------------------------
    async def phase_profile(self) -> None:
        seconds = self.args.profile_seconds
        use_spy = self.args.profiler == "py-spy"
        with phase(f"profile ({self.args.profiler}): {seconds} s of sequential no-op "
                   "/threads/{id}/runs/wait from 8 clients"):
            out = Path(self.args.workdir) / ("profile.txt" if use_spy else "profile.pstats")
            tids = await self.threads(8)
            body = {"assistant_id": "noop", "input": {}}
            for t in tids:
                (await self.client.post(f"/threads/{t}/runs/wait", json=body)).raise_for_status()
            if use_spy:
                spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                if not Path(spy).exists():  # noqa: ASYNC240
                    print("   py-spy not installed: skipping")
                    return
                proc = await asyncio.create_subprocess_exec(
                    spy, "record", "-p", str(self.server.pid), "-d", str(seconds), "-r", "250",
                    "-f", "raw", "-o", str(out), "--nonblocking", "--full-filenames",
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            else:
                if self.server.cprofile_out is None:
                    print("   the server was not started under cProfile: skipping")
                    return
                os.kill(self.server.pid, signal.SIGUSR1)
            runs = 0
            deadline = time.monotonic() + seconds
            c0 = self.server.cpu()

            async def client(tid: str) -> None:
                nonlocal runs
                while time.monotonic() < deadline:
                    r = await self.client.post(f"/threads/{tid}/runs/wait", json=body)
                    r.raise_for_status()
                    runs += 1
            await asyncio.gather(*(client(t) for t in tids))
            cpu = self.server.cpu() - c0
            if use_spy:
                await proc.wait()
                if out.exists():
                    self.results["profile"] = summarize_profile(out, runs)
            else:
                os.kill(self.server.pid, signal.SIGUSR2)
                for _ in range(50):
                    await asyncio.sleep(0.1)
                    if self.server.cprofile_out.exists():
                        break
                await asyncio.sleep(0.5)
                self.results["profile"] = summarize_cprofile(self.server.cprofile_out, runs)
            self.results["profile"]["server_cpu_per_run_ms"] = cpu / max(runs, 1) * 1e3
            print(f"   {runs} runs, {cpu / max(runs, 1) * 1e3:.1f} ms server CPU/run "
                  "(profiler overhead included); output " + str(out if use_spy else
                                                               self.server.cprofile_out))
            for line in self.results["profile"]["report"]:
                print("   " + line)


    # -- rss ---------------------------------------------------------------------------------------
    async def rss_round(self, k: int) -> dict[str, Any]:
        """One fresh server and database: warm up, then hold ``--rss-streams`` streams open
        at once and read the server's RSS before and with all of them open."""
        import httpx

        n, hold = self.args.rss_streams, self.args.rss_hold
        name = f"{DB}_rss"
        dsn = self.pg.create_database(name)
        env = dict(getattr(self, "extra_env", {}))
        snaps: Path | None = None
        if self.args.tracemalloc:
            snaps = Path(self.args.workdir) / f"rss-snapshots-{k}"
            shutil.rmtree(snaps, ignore_errors=True)
            snaps.mkdir(parents=True)
            (snaps / "sitecustomize.py").write_text(_SNAPSHOT_HOOK)
            env["BENCH_TRACEMALLOC"] = str(self.args.tracemalloc)
            env["BENCH_SNAPSHOTS"] = str(snaps)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(snaps), env.get("PYTHONPATH"))
                                                if p)
        server = Server(Path(self.args.workdir), dsn, workers=self.args.workers,
                        jobs=self.args.jobs, log_level=self.args.log_level, extra_env=env,
                        cmd=self.args.rss_server_cmd)
        server.start()
        client = httpx.AsyncClient(
            base_url=server.url, timeout=httpx.Timeout(120.0, connect=60.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=2000))
        tasks: list[asyncio.Task[Stream]] = []
        try:
            path = "/threads/{}/runs/stream"
            warm = {"assistant_id": "stream", "input": {"tokens": 1, "delay": 0.01},
                    "stream_mode": ["messages-tuple"]}
            tids: list[str] = []
            sem = asyncio.Semaphore(32)

            async def thread() -> None:
                async with sem:
                    r = await client.post("/threads", json={})
                    r.raise_for_status()
                    tids.append(str(r.json()["thread_id"]))
            await asyncio.gather(*(thread() for _ in range(n + 20)))
            # Warm-up: lazy imports, compiled graph, pools, first connections.
            for _ in range(2):
                got = await asyncio.gather(*(stream_run(client, path.format(t), warm)
                                             for t in tids[n:]))
                if any(s.status != "success" for s in got):
                    raise RuntimeError(f"warm-up stream failed: {got[0].error}")
            await asyncio.sleep(2)
            rss0 = await self.rss_median(server)
            if snaps is not None:
                await snapshot(server.pid, snaps, 1)
            body = {"assistant_id": "stream", "input": {"tokens": 1, "delay": hold},
                    "stream_mode": ["messages-tuple"]}
            streams = [Stream() for _ in range(n)]
            t0 = time.monotonic()
            deadline = t0 + hold * 0.8
            half = n // 2
            rss_half = 0
            # Two steps, half the streams each: the second step's growth is the marginal
            # cost of a stream, without what grows once (pools reaching their size).
            for lo, hi in ((0, half), (half, n)):
                tasks += [asyncio.create_task(stream_run(client, path.format(t), body, s))
                          for t, s in zip(tids[lo:hi], streams[lo:hi], strict=True)]
                while time.monotonic() < deadline:
                    if all(s.first_token is not None or s.error or s.end
                           for s in streams[:hi]):
                        break
                    await asyncio.sleep(0.1)
                if hi == half:
                    rss_half = await self.rss_median(server)
                    if snaps is not None:
                        await snapshot(server.pid, snaps, 2)
            opened = time.monotonic() - t0
            open_now = sum(1 for s in streams if s.first_token is not None and s.end is None)
            rss1 = await self.rss_median(server)
            if snaps is not None:
                await snapshot(server.pid, snaps, 3)
            still = sum(1 for s in streams if s.first_token is not None and s.end is None)
            errors = collections.Counter((s.error or s.run_error or "no token")[:120]
                                         for s in streams if s.first_token is None)
            out: dict[str, Any] = {
                "streams": n, "open": min(open_now, still), "open_s": opened,
                "rss_before_kb": rss0, "rss_half_kb": rss_half, "rss_open_kb": rss1,
                "kb_per_stream": (rss1 - rss0) / max(1, min(open_now, still)),
                "marginal_kb_per_stream": (rss1 - rss_half) / max(1, n - half),
                "errors": dict(errors.most_common(3))}
            if snaps is not None:
                out["tracemalloc"] = summarize_tracemalloc(  # the second half's growth
                    snaps / "snapshot.2", snaps / "snapshot.3", n - half)
            return out
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.aclose()
            server.stop()
            self.pg.drop_database(name)

    async def rss_median(self, server: Server, samples: int = 5) -> int:
        values = []
        for _ in range(samples):
            values.append(server.rss_kb())
            await asyncio.sleep(0.2)
        return int(median(values))

    async def phase_rss(self) -> None:
        n, rounds = self.args.rss_streams, self.args.rss_rounds
        with phase(f"rss: {rounds} rounds (fresh server each) of {n} streams held open "
                   f"({self.args.rss_hold:g} s after their one token)"
                   + (f", server: {self.args.rss_server_cmd}" if self.args.rss_server_cmd
                      else "")
                   + (f", tracemalloc {self.args.tracemalloc} frames"
                      if self.args.tracemalloc else "")):
            out = []
            for k in range(rounds):
                r = await self.rss_round(k + 1)
                out.append(r)
                print(f"   round {k + 1}: {r['open']}/{n} open after {r['open_s']:.1f} s; "
                      f"RSS {r['rss_before_kb'] / 1024:.1f} -> {r['rss_half_kb'] / 1024:.1f} "
                      f"(half) -> {r['rss_open_kb'] / 1024:.1f} MB: "
                      f"{r['kb_per_stream']:.1f} KB/stream, "
                      f"{r['marginal_kb_per_stream']:.1f} KB marginal (second half)"
                      + (f"; not open: {r['errors']}" if r["errors"] else ""), flush=True)
                for line in r.get("tracemalloc", {}).get("report", []):
                    print("   " + line)
            self.results["rss"] = {
                "streams": n, "rounds": out,
                "kb_per_stream": median([r["kb_per_stream"] for r in out]),
                "marginal_kb_per_stream": median([r["marginal_kb_per_stream"] for r in out])}
            each = ", ".join(f"{r['kb_per_stream']:.1f}/{r['marginal_kb_per_stream']:.1f}"
                             for r in out)
            print(f"   RSS per open stream: {self.results['rss']['kb_per_stream']:.1f} KB, "
                  f"marginal {self.results['rss']['marginal_kb_per_stream']:.1f} KB "
                  f"(medians; rounds {each})", flush=True)


# -- statements and profile parsing -------------------------------------------------------------
_LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \w+ \[(\d+)\] \{([^}]*)\} (\w+):\s+(.*)$")


def parse_statements(text: str) -> list[dict[str, Any]]:
    """``LOG: statement|execute`` entries after the marker, numbered by transaction.

    The log line prefix carries the virtual transaction id, so statements sent as one
    pipeline (one implicit transaction, no BEGIN) are grouped as PostgreSQL ran them.
    Transactions of the cron ticker (a background actor ticking every second, not part
    of a run) are left out."""
    entries: list[list[Any]] = []
    for line in text.splitlines():
        m = _LOG_LINE.match(line)
        if m:
            entries.append([int(m.group(1)), m.group(2), m.group(3), m.group(4)])
        elif entries:
            entries[-1][3] += " " + line.strip()
    rows: list[dict[str, Any]] = []
    seen_mark = False
    for pid, vxid, level, msg in entries:
        if level != "LOG":
            continue
        m = re.match(r"(?:statement|execute [^:]*):\s*(.*)$", msg)
        if not m:
            continue
        sql = " ".join(m.group(1).split())
        if "bench-mark" in sql:
            seen_mark = True
            continue
        if seen_mark:
            rows.append({"pid": pid, "vxid": vxid, "sql": sql})
    cron = {r["vxid"] for r in rows if "FROM crons" in r["sql"]}
    rows = [r for r in rows if r["vxid"] not in cron]
    numbers: dict[str, int] = {}
    for r in rows:
        r["xact"] = numbers.setdefault(r["vxid"], len(numbers) + 1)
    return rows


def xacts_of(stmts: list[dict[str, Any]]) -> int:
    return len({s["vxid"] for s in stmts})


def summarize_profile(path: Path, runs: int) -> dict[str, Any]:
    """Self time by function and inclusive time by area, from py-spy's collapsed stacks."""
    self_t: collections.Counter[str] = collections.Counter()
    area_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    areas = [("aegra", "/aegra/"), ("langgraph", "/langgraph/"),
             ("langchain_core", "/langchain_core/"), ("asyncpg", "/asyncpg/"),
             ("psycopg", "/psycopg"), ("trio_asyncio", "/trio_asyncio/"),
             ("trio", "/trio/"), ("hypercorn", "/hypercorn/"), ("quart", "/quart"),
             ("werkzeug", "/werkzeug/"), ("h11", "/h11/"), ("structlog", "/structlog/"),
             ("logging", "/logging/"), ("asyncio", "/asyncio/"), ("msgspec", "msgspec"),
             ("pydantic", "/pydantic")]
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        frames = stack.split(";")
        total += n
        self_t[_short(frames[-1])] += n
        leaf = frames[-1]
        for name, marker in areas:  # the leaf's library: where the CPU is actually spent
            if marker in leaf:
                area_t[name] += n
                break
        else:
            area_t["other (stdlib, C)"] += n
        for key in {_short(f) for f in frames}:
            incl[key] += n
    report = [f"{total} samples, {runs} runs; self time by library of the leaf frame:"]
    for name, n in area_t.most_common():
        report.append(f"  {n / total * 100:5.1f}%  {name}")
    report.append("top self time:")
    for name, n in self_t.most_common(20):
        report.append(f"  {n / total * 100:5.1f}%  {name}")
    report.append("top inclusive (aegra / selected):")
    picks = [(k, v) for k, v in incl.most_common() if "aegra" in k or "hypercorn" in k
             or "astream" in k or "asyncpg" in k and "execute" in k]
    for name, n in picks[:30]:
        report.append(f"  {n / total * 100:5.1f}%  {name}")
    return {"samples": total, "runs": runs, "report": report}


_AREAS = [("aegra", "/aegra/"), ("langgraph", "/langgraph/"),
          ("langchain_core", "/langchain_core/"), ("asyncpg", "/asyncpg/"),
          ("psycopg/psycopg_pool", "/psycopg"), ("trio_asyncio", "/trio_asyncio/"),
          ("trio", "/trio/"), ("hypercorn", "/hypercorn/"), ("quart", "/quart"),
          ("werkzeug", "/werkzeug/"), ("h11", "/h11/"), ("structlog", "/structlog/"),
          ("logging", "/logging/"), ("prometheus_client", "/prometheus_client/"),
          ("asyncio", "/asyncio/"), ("pydantic", "/pydantic"), ("uuid", "/uuid.py"),
          ("json", "/json/"), ("contextlib/contextvars", "/contextlib.py"),
          ("threading/concurrent", "/threading.py"), ("threading/concurrent", "/concurrent/")]


def summarize_cprofile(path: Path, runs: int) -> dict[str, Any]:
    """Self CPU time (cProfile on process_time) by library, and the top functions."""
    import pstats

    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    by_area: collections.Counter[str] = collections.Counter()
    by_fn: collections.Counter[str] = collections.Counter()
    cum: dict[str, float] = {}
    total = 0.0
    for (file, line, fn), (_cc, _nc, tt, ct, _callers) in stats.items():
        total += tt
        for name, marker in _AREAS:
            if marker in file:
                by_area[name] += tt
                break
        else:
            by_area["builtins/C" if file == "~" else "other stdlib"] += tt
        key = _short(f"{fn} ({file}:{line})")
        by_fn[key] += tt
        if "/aegra/" in file or "hypercorn" in file or "quart" in file:
            cum[key] = max(cum.get(key, 0.0), ct)
    per_run = 1e3 / max(runs, 1)
    report = [f"{total:.1f} s profiled CPU, {runs} runs: {total * per_run:.1f} ms/run; "
              "self time by library:"]
    for name, t in by_area.most_common():
        report.append(f"  {t / total * 100:5.1f}%  {t * per_run:6.2f} ms/run  {name}")
    report.append("top self time:")
    for name, t in by_fn.most_common(25):
        report.append(f"  {t / total * 100:5.1f}%  {t * per_run:6.2f} ms/run  {name}")
    report.append("cumulative, aegra/hypercorn/quart functions (async: per resumption):")
    for name, t in sorted(cum.items(), key=lambda kv: -kv[1])[:25]:
        report.append(f"  {t / total * 100:5.1f}%  {t * per_run:6.2f} ms/run  {name}")
    return {"profiled_cpu_s": total, "runs": runs, "report": report}


def _short(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    m = re.match(r"(.*) \((.*?):?(\d+)?\)$", frame)
    if not m:
        return frame
    fn, file = m.group(1), m.group(2)
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{fn} ({file})"


# -- tracemalloc (rss phase) -----------------------------------------------------------------
# sitecustomize.py of a server started by ``--tracemalloc``: the first SIGUSR1 starts
# tracing ($BENCH_TRACEMALLOC frames; a server traced from its start is too slow to boot
# on a busy machine) and writes an empty snapshot.1; each later one dumps a snapshot to
# $BENCH_SNAPSHOTS/snapshot.<n> (written aside, then renamed).
_SNAPSHOT_HOOK = '''
import os, signal, tracemalloc

def _dump(*_):
    d = os.environ["BENCH_SNAPSHOTS"]
    n = 1 + sum(1 for f in os.listdir(d) if f.startswith("snapshot."))
    if not tracemalloc.is_tracing():
        tracemalloc.start(int(os.environ["BENCH_TRACEMALLOC"]))
        open(os.path.join(d, "partial"), "wb").close()
    else:
        tracemalloc.take_snapshot().dump(os.path.join(d, "partial"))
    os.rename(os.path.join(d, "partial"), os.path.join(d, f"snapshot.{n}"))

if os.environ.get("BENCH_SNAPSHOTS"):
    signal.signal(signal.SIGUSR1, _dump)
'''


async def snapshot(pid: int, folder: Path, n: int) -> None:
    os.kill(pid, signal.SIGUSR1)
    target = folder / f"snapshot.{n}"
    deadline = time.monotonic() + 120
    while not target.exists():  # noqa: ASYNC110  a bench polling a file
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {target}")
        await asyncio.sleep(0.2)


def _package(filename: str) -> str:
    """``site-packages/h11/_state.py`` -> ``h11``; ``src/aegra/api/sse.py`` ->
    ``aegra.api.sse``; the standard library -> ``stdlib:<module>``."""
    if "site-packages/" in filename:
        rest = filename.split("site-packages/", 1)[1]
        return rest.split("/", 1)[0].removesuffix(".py")
    if "/aegra/" in filename:
        rest = filename.rsplit("/aegra/", 1)[1].removesuffix(".py")
        return "aegra." + ".".join(rest.split("/")[:2])
    if "/bench/" in filename:
        return "bench." + filename.rsplit("/", 1)[1].removesuffix(".py")
    if "/lib/python3" in filename:
        rest = filename.split("/lib/python3", 1)[1].split("/", 1)[-1]
        return "stdlib:" + rest.split("/", 1)[0].removesuffix(".py")
    return filename


# Layers of the server, in the order an allocation's traceback is matched against them
# (the first whose marker appears anywhere on it wins).
_LAYERS = (
    ("broker and SSE (ours)", ("aegra/adapters/memory/", "aegra/api/sse")),
    ("PostgreSQL drivers", ("asyncpg/", "psycopg", "aegra/adapters/postgres/")),
    ("langchain_core (model, callbacks)", ("langchain_core/",)),
    ("LangGraph", ("langgraph/",)),
    ("runner and bridge (ours + trio_asyncio)", ("aegra/adapters/langgraph/",
                                                 "aegra/adapters/aio", "trio_asyncio/")),
    ("worker and registry (ours)", ("aegra/supervisor/worker", "aegra/runtime/")),
    ("HTTP (hypercorn, h11, quart, werkzeug)", ("hypercorn/", "/h11/", "quart", "werkzeug/")),
    ("API handlers (ours)", ("aegra/api/",)),
    ("trio", ("trio/",)),
)


def _layer(filenames: list[str]) -> str:
    text = " ".join(filenames)
    for name, marks in _LAYERS:
        if any(m in text for m in marks):
            return name
    return "other"


def summarize_tracemalloc(before: Path, after: Path, streams: int) -> dict[str, Any]:
    """Growth between two snapshots per open stream: by the innermost non-stdlib package
    of each allocation's traceback, by the innermost aegra module on it, and the top
    sites (innermost frames)."""
    import tracemalloc

    skip = [tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]
    a = tracemalloc.Snapshot.load(str(before)).filter_traces(skip)
    b = tracemalloc.Snapshot.load(str(after)).filter_traces(skip)
    diffs = b.compare_to(a, "traceback")
    by_pkg: collections.Counter[str] = collections.Counter()
    by_aegra: collections.Counter[str] = collections.Counter()
    by_layer: collections.Counter[str] = collections.Counter()
    total = 0
    for d in diffs:
        frames = list(d.traceback)[::-1]  # innermost first
        by_layer[_layer([f.filename for f in frames])] += d.size_diff
        pkgs = [_package(f.filename) for f in frames]
        outside = next((p for p in pkgs if not p.startswith("stdlib:")), pkgs[0])
        by_pkg[outside] += d.size_diff
        by_aegra[next((p for p in pkgs if p.startswith("aegra.")), "(no aegra frame)")] += \
            d.size_diff
        total += d.size_diff
    per = 1 / max(1, streams)
    report = [f"tracemalloc: {total * per / 1024:.1f} KB/stream of Python allocations; "
              "by layer (first match on the traceback):"]
    for name, size in by_layer.most_common():
        report.append(f"  {size * per / 1024:7.2f} KB  {name}")
    report.append("by innermost non-stdlib package:")
    for name, size in by_pkg.most_common(15):
        report.append(f"  {size * per / 1024:7.2f} KB  {name}")
    report.append("by innermost aegra module on the traceback:")
    for name, size in by_aegra.most_common(12):
        report.append(f"  {size * per / 1024:7.2f} KB  {name}")
    report.append("top sites (innermost 4 frames):")
    for d in sorted(diffs, key=lambda d: -d.size_diff)[:25]:
        frames = list(d.traceback)[::-1][:4]
        where = " < ".join(f"{_short_path(f.filename)}:{f.lineno}" for f in frames)
        report.append(f"  {d.size_diff * per:8.0f} B {d.count_diff * per:6.1f} blk  {where}")
    return {"python_kb_per_stream": total * per / 1024,
            "by_layer_kb": {k: v * per / 1024 for k, v in by_layer.most_common()},
            "by_package_kb": {k: v * per / 1024 for k, v in by_pkg.most_common(30)},
            "by_aegra_kb": {k: v * per / 1024 for k, v in by_aegra.most_common(30)},
            "report": report}


def _short_path(filename: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/", "/bench/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# -- report ----------------------------------------------------------------------------------------
def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []

    def add(label: str, key: str, fmt: str, *path: str) -> None:
        value: Any = results
        for p in (key, *path):
            if not isinstance(value, dict) or p not in value:
                return
            value = value[p]
        rows.append((label, fmt.format(value)))

    add("GET /ok server CPU per request", "http_ok", "{:.2f} ms", "server_cpu_per_request_ms")
    for k in ("wait_stateful", "wait_stateless"):
        add(f"{k} p50 / p99", k, "{:.1f} ms", "p50_ms")
        if k in results:
            rows[-1] = (rows[-1][0], f"{results[k]['p50_ms']:.1f} / "
                                     f"{results[k]['p99_ms']:.1f} ms")
        add(f"{k} server CPU per run", k, "{:.2f} ms", "server_cpu_per_run_ms")
        add(f"{k} PostgreSQL CPU per run", k, "{:.2f} ms", "pg_cpu_per_run_ms")
    for c in (8, 32):
        add(f"background {c} clients", f"background_{c}", "{:.0f} runs/s", "runs_per_s")
        add(f"background {c} clients server CPU per run", f"background_{c}", "{:.2f} ms",
            "server_cpu_per_run_ms")
    add("SSE first event p50", "sse", "{:.1f} ms", "first_event_p50_ms")
    add("SSE first token p50", "sse", "{:.1f} ms", "first_token_p50_ms")
    add("server CPU per streamed event (overall)", "events", "{:.0f} µs",
        "server_cpu_per_event_us")
    add("server CPU per streamed event (marginal)", "events", "{:.0f} µs",
        "server_marginal_cpu_per_event_us")
    add("server CPU per paced event (marginal, 0.05 s apart)", "events", "{:.0f} µs",
        "paced_marginal_cpu_per_event_us")
    add("PostgreSQL xacts per no-op run, stateful", "txn", "{:.2f}", "stateful", "per_run")
    add("PostgreSQL xacts per no-op run, stateless", "txn", "{:.2f}", "stateless", "per_run")
    if "rss" in results:
        r = results["rss"]
        rows.append((f"RSS per open stream, all / marginal ({r['streams']} streams, median "
                     f"of {len(r['rounds'])})",
                     f"{r['kb_per_stream']:.1f} / {r['marginal_kb_per_stream']:.1f} KB"))
    for key in sorted(k for k in results if k.startswith("streams_")):
        r = results[key]
        rows.append((f"{r['streams']} streams: completed / p99 / first event p50",
                     f"{r['completed']}/{r['streams']}, {r['duration_p99_s']:.2f} s, "
                     f"{r['first_event_p50_ms']:.0f} ms"))
        rows.append((f"{r['streams']} streams: server RSS before / peak",
                     f"{r['rss_before_mb']:.0f} / {r['rss_peak_mb']:.0f} MB"))
    width = max((len(r[0]) for r in rows), default=10)
    return "\n".join(f"{a:<{width}}  {b}" for a, b in rows)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    selected = [p.strip() for p in args.phases.split(",") if p.strip()]
    for p in selected:
        if p not in PHASES:
            raise SystemExit(f"unknown phase {p!r}; expected some of {','.join(PHASES)}")
    with Postgres(args.database_url) as pg:
        dsn = pg.create_database(DB)
        print(f"PostgreSQL: {'embedded (pgserver)' if pg.embedded else args.database_url}; "
              f"database {DB}", flush=True)
        extra = dict(e.split("=", 1) for e in args.env)
        if args.src:
            extra["PYTHONPATH"] = str(Path(args.src).resolve())  # noqa: ASYNC240
        profiled = "profile" in selected and args.profiler == "cprofile"
        server = Server(Path(args.workdir), dsn, workers=args.workers, jobs=args.jobs,
                        log_level=args.log_level, extra_env=extra,
                        cprofile_out=Path(args.workdir) / "profile.pstats" if profiled
                        else None, processes=args.processes).start()
        print(f"server pid {server.pid} on {server.url}: --processes {args.processes} "
              f"WORKER_COUNT={args.workers} "
              f"N_JOBS_PER_WORKER={args.jobs}; log {server.log_path}"
              + (f"; source {args.src}" if args.src else ""), flush=True)
        bench = Bench(args, server, pg)
        bench.extra_env = extra  # the rss phase starts servers of its own
        try:
            idle0 = server.cpu()
            await asyncio.sleep(3)
            bench.results["idle_server_cpu_ms_per_s"] = (server.cpu() - idle0) / 3 * 1e3
            for p in PHASES:
                if p in selected:
                    await getattr(bench, f"phase_{p}")()
            bench.results["server_rss_end_mb"] = server.rss_kb() / 1024
        finally:
            await bench.client.aclose()
            server.stop()
            if not pg.embedded:
                pg.drop_database(DB)
        return bench.results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", help="an existing PostgreSQL (superuser DSN of a "
                    "maintenance db); default: an embedded pgserver in a temp folder")
    ap.add_argument("--workers", type=int, default=int(os.environ.get("WORKER_COUNT", 4)),
                    help="WORKER_COUNT of the server (default 4)")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("N_JOBS_PER_WORKER", 250)),
                    help="N_JOBS_PER_WORKER (default 250: 1,000 runs at once)")
    ap.add_argument("--processes", type=int, default=1,
                    help="aegra serve --processes N (CPU and RSS summed over the children; "
                    "without Redis in --env they use the PostgreSQL channel)")
    ap.add_argument("--phases", default=",".join(p for p in PHASES if p != "profile"),
                    help=f"comma-separated subset of {','.join(PHASES)} "
                    "(default: all but profile)")
    ap.add_argument("--seq-runs", type=int, default=150,
                    help="sequential /wait runs per round and form")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the sequential phase")
    ap.add_argument("--bg-runs", type=int, default=320,
                    help="background runs with 8 clients (twice as many with 32)")
    ap.add_argument("--sse-runs", type=int, default=100)
    ap.add_argument("--event-tokens", type=int, default=401)
    ap.add_argument("--event-runs", type=int, default=24)
    ap.add_argument("--txn-runs", type=int, default=60)
    ap.add_argument("--stream-counts", default="500,1000")
    ap.add_argument("--client", choices=("httpx", "raw"), default="httpx",
                    help="streams phase: the load generator's HTTP client: httpx (default, "
                    "as in earlier measurements) or a bare asyncio connection (far less "
                    "client CPU per stream on a machine the server shares)")
    ap.add_argument("--stream-timeout", type=float, default=90.0,
                    help="seconds the concurrent streams of one size may take in all")
    ap.add_argument("--profile-seconds", type=int, default=15)
    ap.add_argument("--rss-streams", type=int, default=300,
                    help="rss phase: streams held open at once (default 300)")
    ap.add_argument("--rss-rounds", type=int, default=3,
                    help="rss phase: rounds, each on a fresh server and database (default 3)")
    ap.add_argument("--rss-hold", type=float, default=120.0,
                    help="rss phase: seconds each run holds its stream open after its token "
                    "(all must open within 80%% of it)")
    ap.add_argument("--rss-server-cmd", metavar="CMD",
                    help="rss phase: measure the server this command starts instead of "
                    "'aegra serve' (shell words; {host} and {port} are filled in; run in the "
                    "server's folder with its aegra.json, DATABASE_URL, LOG_LEVEL, "
                    "WORKER_COUNT, N_JOBS_PER_WORKER and --env), e.g. another project's "
                    "'/venv/bin/python -m uvicorn app:app --host {host} --port {port}'")
    ap.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                    help="rss phase: trace the servers' allocations (this many frames) from "
                    "just before the streams open and break the growth down by layer, "
                    "package and site (slows the server; its RSS then counts the traces)")
    ap.add_argument("--profiler", choices=("cprofile", "py-spy"), default="cprofile",
                    help="profile phase: cProfile on a CPU clock inside the server "
                    "(default), or py-spy (sampling; counts runnable time too)")
    ap.add_argument("--log-level", default="INFO", help="server LOG_LEVEL (default INFO)")
    ap.add_argument("--src", help="run the server from this source tree (PYTHONPATH=SRC), to "
                    "compare a change against the installed one")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra server environment (repeatable)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--workdir", help="keep the server's folder (log, profile) here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="aegra-bench-") as wd:
        if args.workdir:  # kept: server log, profile
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
        else:
            args.workdir = wd
        t0 = time.monotonic()
        results = asyncio.run(run(args))
        results["elapsed_s"] = time.monotonic() - t0
        print("\n" + table(results))
        for key in ("stateful", "stateless"):
            stmts = results.get("statements", {}).get(key)
            if stmts:
                print(f"\nstatements of one {key} no-op /runs/wait "
                      "(transaction #, backend pid):")
                for s in stmts:
                    print(f"  {s['xact']:>2} [{s['pid']}] {s['sql'][:150]}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
            print(f"\nresults: {args.json}")
        print(f"total {results['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
