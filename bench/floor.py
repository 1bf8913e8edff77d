"""The floor under ``bench/runs.py``: the same graphs in-process, no server. A script.

``bench/graphs.py`` (``noop``, ``stream``) invoked with LangGraph and the official
PostgreSQL checkpointer (``AsyncPostgresSaver`` on a psycopg ``AsyncConnectionPool``, the
pool settings the server uses), measured twice:

  asyncio  a plain ``asyncio.run`` loop
  bridge   ``trio.run`` + ``trio_asyncio.open_loop()``, each run crossing once with
           ``aio_as_trio`` (the server's placement of graph execution, DESIGN §2)

Figures: this process's CPU (utime+stime, all threads) per no-op run, for runs on one
thread (``same``, like stateful /threads/{id}/runs/wait), on a new thread each
(``new``), and on a new thread deleted afterwards (``new+delete``, like stateless
/runs/wait); CPU per streamed event of ``stream_mode="messages"`` (overall, and marginal:
runs of 401 chunks against runs of 1 chunk); PostgreSQL transactions per no-op run. Each
CPU figure is the median of ``--rounds`` rounds. Last, ``--concurrent`` 2-second runs
(21 chunks 0.1 s apart, as runs.py's streams phase) started at once: CPU per run and how
long they all took, the floor under "1,000 concurrent streams". PostgreSQL is embedded
(pgserver) unless ``--database-url``.
"""

# trio_asyncio before psycopg_pool (DESIGN §2 import-order trap): importing psycopg_pool
# first made the checkpointer's pool time out on open under trio-asyncio.
import trio_asyncio  # noqa: I001, TID251  (a benchmark, not server code)

import argparse
import asyncio  # noqa: TID251  (a benchmark, not server code)
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import STATS_FLUSH_S, Postgres, median  # noqa: E402

DB = "aegra_floor"


def _saver_pool(dsn: str) -> Any:
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    # As the server's persistence.py: autocommit, no prepared statements, dict rows.
    return AsyncConnectionPool(
        dsn, min_size=1, max_size=10, open=False,
        kwargs={"autocommit": True, "prepare_threshold": None, "row_factory": dict_row})


class Workloads:
    """The measured loops, as asyncio coroutine functions (one call = one bridge crossing
    per run on the trio side, the way the server drives a run)."""

    def __init__(self, saver: Any, durability: str | None = None) -> None:
        import graphs

        self.saver = saver
        self.kwargs = {"durability": durability} if durability else {}
        self.noop = graphs.noop.copy(update={"checkpointer": saver})
        self.stream = graphs.stream.copy(update={"checkpointer": saver})

    async def noop_run(self, thread_id: str, delete: bool) -> None:
        await self.noop.ainvoke({}, {"configurable": {"thread_id": thread_id}}, **self.kwargs)
        if delete:
            await self.saver.adelete_thread(thread_id)

    async def stream_run(self, thread_id: str, tokens: int, delay: float = 0.0) -> int:
        events = 0
        async for _ in self.stream.astream({"tokens": tokens, "delay": delay},
                                           {"configurable": {"thread_id": thread_id}},
                                           stream_mode="messages"):
            events += 1
        return events


Crossing = Callable[..., Awaitable[Any]]


async def measure(call: Crossing, w: Workloads, args: argparse.Namespace,
                  pg: Postgres) -> dict[str, Any]:
    """All figures for one loop flavour; ``call(fn, *a)`` runs ``fn(*a)`` on asyncio."""
    out: dict[str, Any] = {}
    n = args.runs
    for _ in range(20):  # warm-up: pool connections, LangGraph's lazy imports
        await call(w.noop_run, str(uuid.uuid4()), True)
    for kind in ("same", "new", "new+delete"):
        per_round = []
        for _ in range(args.rounds):
            tid = str(uuid.uuid4())
            c0 = time.process_time()
            for _ in range(n):
                if kind == "same":
                    await call(w.noop_run, tid, False)
                else:
                    await call(w.noop_run, str(uuid.uuid4()), kind == "new+delete")
            per_round.append((time.process_time() - c0) / n * 1e3)
        out[f"noop_{kind}_cpu_ms"] = median(per_round)
        out[f"noop_{kind}_rounds_ms"] = per_round
        print(f"   no-op ({kind} thread): {median(per_round):.2f} ms CPU/run "
              f"(rounds {', '.join(f'{x:.2f}' for x in per_round)})", flush=True)
    # Streaming: overall and marginal CPU per messages event.
    per_event, marginal = [], []
    for _ in range(args.rounds):
        cost = {}
        for tokens in (1, args.tokens):
            events = 0
            c0 = time.process_time()
            for _ in range(args.stream_runs):
                events += await call(w.stream_run, str(uuid.uuid4()), tokens)
            cost[tokens] = (time.process_time() - c0, events)
        (c_small, e_small), (c_big, e_big) = cost[1], cost[args.tokens]
        per_event.append(c_big / e_big * 1e6)
        marginal.append((c_big - c_small) / (e_big - e_small) * 1e6)
    out["stream_1chunk_run_cpu_ms"] = cost[1][0] / args.stream_runs * 1e3
    out["stream_cpu_per_event_us"] = median(per_event)
    out["stream_marginal_cpu_per_event_us"] = median(marginal)
    out["stream_events_per_run"] = e_big / args.stream_runs
    print(f"   stream: {median(per_event):.0f} µs CPU/event overall, "
          f"{median(marginal):.0f} µs marginal ({e_big // args.stream_runs} events/run)",
          flush=True)
    # Paced tokens, as a model streams them: 20 runs at once of 41 chunks 0.05 s apart,
    # against 20 runs of 1 chunk; every chunk is then a wake-up of its own.
    paced = []
    for _ in range(args.rounds):
        cost = {}
        for tokens, delay in ((1, 0.0), (41, 0.05)):
            got: list[int] = []

            async def one(tokens: int = tokens, delay: float = delay,
                          got: list[int] = got) -> None:
                got.append(await w.stream_run(str(uuid.uuid4()), tokens, delay))

            async def twenty(one: Any = one) -> None:
                await asyncio.gather(*(one() for _ in range(20)))

            c0 = time.process_time()
            await call(twenty)
            cost[tokens] = (time.process_time() - c0, sum(got))
        paced.append((cost[41][0] - cost[1][0]) / (cost[41][1] - cost[1][1]) * 1e6)
    out["paced_marginal_cpu_per_event_us"] = median(paced)
    print(f"   paced (0.05 s apart): {median(paced):.0f} µs CPU/event marginal", flush=True)
    # The streams scenario of runs.py: many 2-second runs (21 chunks 0.1 s apart) at once.
    if args.concurrent:
        durations: list[float] = []

        async def timed() -> None:
            t = time.perf_counter()
            await w.stream_run(str(uuid.uuid4()), 21, 0.1)
            durations.append(time.perf_counter() - t)

        async def all_at_once() -> None:
            await asyncio.gather(*(timed() for _ in range(args.concurrent)))

        c0, t0 = time.process_time(), time.perf_counter()
        await call(all_at_once)
        cpu = time.process_time() - c0
        durations.sort()
        out["concurrent_2s_runs"] = args.concurrent
        out["concurrent_2s_cpu_per_run_ms"] = cpu / args.concurrent * 1e3
        out["concurrent_2s_wall_s"] = time.perf_counter() - t0
        out["concurrent_2s_p99_s"] = durations[int(0.99 * (len(durations) - 1))]
        print(f"   {args.concurrent} concurrent 2-second runs: {cpu / args.concurrent * 1e3:.1f} "
              f"ms CPU/run, all done in {out['concurrent_2s_wall_s']:.1f} s (p99 "
              f"{out['concurrent_2s_p99_s']:.2f} s)", flush=True)
    # Transactions per no-op run (stats flush when backends are idle, within 10 s).
    if args.txn:
        tid = str(uuid.uuid4())
        await trio_or_asyncio_sleep(call, STATS_FLUSH_S)
        x0 = pg.xacts(DB)
        for _ in range(100):
            await call(w.noop_run, tid, False)
        await trio_or_asyncio_sleep(call, STATS_FLUSH_S)
        same = (pg.xacts(DB) - x0) / 100
        x0 = pg.xacts(DB)
        for _ in range(100):
            await call(w.noop_run, str(uuid.uuid4()), True)
        await trio_or_asyncio_sleep(call, STATS_FLUSH_S)
        fresh = (pg.xacts(DB) - x0) / 100
        out["xacts_per_run_same"] = same
        out["xacts_per_run_new_delete"] = fresh
        print(f"   PostgreSQL transactions per no-op run: {same:.2f} (same thread), "
              f"{fresh:.2f} (new thread + delete)", flush=True)
    return out


async def trio_or_asyncio_sleep(call: Crossing, seconds: float) -> None:
    await call(asyncio.sleep, seconds)


# -- the two loops -------------------------------------------------------------------------------
async def _with_saver(dsn: str, body: Callable[[Workloads], Awaitable[Any]],
                      durability: str | None) -> Any:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver  # noqa: TID251  (a benchmark, not server code)

    pool = _saver_pool(dsn)
    await pool.open(wait=True, timeout=15)
    try:
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await saver.setup()
        return await body(Workloads(saver, durability))
    finally:
        await pool.close()


def on_asyncio(dsn: str, args: argparse.Namespace, pg: Postgres) -> dict[str, Any]:
    async def direct(fn: Any, *a: Any) -> Any:
        return await fn(*a)

    async def body(w: Workloads) -> Any:
        return await measure(direct, w, args, pg)
    return asyncio.run(_with_saver(dsn, body, args.durability))


def on_bridge(dsn: str, args: argparse.Namespace, pg: Postgres) -> dict[str, Any]:
    async def crossing(fn: Any, *a: Any) -> Any:
        return await trio_asyncio.aio_as_trio(fn)(*a)

    async def main() -> dict[str, Any]:
        async with trio_asyncio.open_loop():
            pool = _saver_pool(dsn)
            await trio_asyncio.aio_as_trio(pool.open)(wait=True, timeout=15)
            try:
                from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver  # noqa: TID251  (a benchmark, not server code)

                saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
                await trio_asyncio.aio_as_trio(saver.setup)()
                return await measure(crossing, Workloads(saver, args.durability), args, pg)
            finally:
                await trio_asyncio.aio_as_trio(pool.close)()
    return trio.run(main)


def worker(dsn: str, loop: str) -> None:
    """``--worker``: for ``bench/ab.py --floor``. Prints ``ready``, then for each line
    ``N`` on stdin runs N no-op runs on one thread and prints the CPU ms per run, so the
    floor is measured in the same time window as the server's rounds."""

    async def serve(w: Workloads, call: Crossing) -> None:
        for _ in range(20):
            await call(w.noop_run, str(uuid.uuid4()), False)
        tid = str(uuid.uuid4())
        print("ready", flush=True)
        for line in sys.stdin:  # blocking on purpose: nothing else runs in this process
            n = int(line)
            c0 = time.process_time()
            for _ in range(n):
                await call(w.noop_run, tid, False)
            print(f"{(time.process_time() - c0) / n * 1e3:.4f}", flush=True)

    if loop == "asyncio":
        async def direct(fn: Any, *a: Any) -> Any:
            return await fn(*a)
        asyncio.run(_with_saver(dsn, lambda w: serve(w, direct), None))
        return

    async def crossing(fn: Any, *a: Any) -> Any:
        return await trio_asyncio.aio_as_trio(fn)(*a)

    async def main() -> None:
        async with trio_asyncio.open_loop():
            pool = _saver_pool(dsn)
            await trio_asyncio.aio_as_trio(pool.open)(wait=True, timeout=15)
            try:
                from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver  # noqa: TID251

                saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
                await trio_asyncio.aio_as_trio(saver.setup)()
                await serve(Workloads(saver), crossing)
            finally:
                await trio_asyncio.aio_as_trio(pool.close)()
    trio.run(main)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", help="an existing PostgreSQL (superuser DSN of a "
                    "maintenance db); default: an embedded pgserver in a temp folder")
    ap.add_argument("--runs", type=int, default=300, help="no-op runs per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=401, help="chunks of the large stream")
    ap.add_argument("--stream-runs", type=int, default=24)
    ap.add_argument("--loops", default="asyncio,bridge", help="asyncio, bridge or both")
    ap.add_argument("--concurrent", type=int, default=200,
                    help="2-second streaming runs started at once (0: skip)")
    ap.add_argument("--durability", choices=("sync", "async", "exit"),
                    help="LangGraph durability of the no-op runs (default: LangGraph's, async)")
    ap.add_argument("--no-txn", dest="txn", action="store_false",
                    help="skip counting transactions (saves ~70 s)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--worker", choices=("asyncio", "bridge"), help=argparse.SUPPRESS)
    ap.add_argument("--dsn", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.dsn, args.worker)
        return
    t0 = time.monotonic()
    results: dict[str, Any] = {}
    with Postgres(args.database_url) as pg:
        dsn = pg.create_database(DB)
        try:
            for loop in args.loops.split(","):
                print(f"\n== {loop} loop: {args.rounds} rounds of {args.runs} no-op runs, "
                      f"{args.stream_runs} streams of 1 and {args.tokens} chunks", flush=True)
                fn = {"asyncio": on_asyncio, "bridge": on_bridge}[loop.strip()]
                results[loop.strip()] = fn(dsn, args, pg)
        finally:
            pg.drop_database(DB)
    print()
    keys = [k for k in next(iter(results.values())) if not k.endswith("_rounds_ms")]
    print(f"{'figure':<36}" + "".join(f"{loop:>12}" for loop in results))
    for k in keys:
        print(f"{k:<36}" + "".join(f"{results[loop].get(k, float('nan')):>12.2f}"
                                   for loop in results))
    results["elapsed_s"] = time.monotonic() - t0
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"\nresults: {args.json}")
    print(f"total {results['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
