"""The server's run path without HTTP: where between the floor and the server the CPU goes.

Boots a real instance in this process (``aegra.supervisor.boot.serve``: the same
adapters, workers, heartbeater, reaper, PostgreSQL pools and LangGraph persistence as
``aegra serve``) and drives ``RunService`` directly from a Trio task: create the no-op
run, wait for its result, as ``/threads/{id}/runs/wait`` does minus the HTTP layer. The
process's CPU per run, set beside ``bench/runs.py`` (same path with HTTP) and
``bench/floor.py`` (LangGraph alone), splits the server's cost into HTTP, run
machinery and LangGraph. A script, not a test; it reaches into the boot sequence to get
hold of the runtime, so it may need updating when boot.py changes.
"""

# trio_asyncio before psycopg_pool (DESIGN §2 import-order trap).
import trio_asyncio  # noqa: I001, TID251  (a benchmark, not server code)
import trio_asyncio._loop  # noqa: TID251  (a benchmark, not server code)

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH, Postgres, median  # noqa: E402


async def drive(cfg: Any, project: Any, args: argparse.Namespace) -> dict[str, Any]:
    from aegra.supervisor import boot
    from aegra.supervisor import runtime as runtime_mod

    captured: dict[str, Any] = {}
    original_open = runtime_mod.RunRuntime.open

    async def open_and_capture(self: Any) -> None:
        captured["runtime"] = self
        # The bridge's loop lives in a context variable of serve()'s task tree; this
        # driver task is outside it and adopts it below.
        captured["loop"] = trio_asyncio._loop.current_loop.get()
        await original_open(self)

    runtime_mod.RunRuntime.open = open_and_capture  # type: ignore[method-assign]
    spent = _instrument()
    out: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(boot.serve, cfg, project)
        await trio.sleep(1.0)  # workers started after serve() reported
        trio_asyncio._loop.current_loop.set(captured["loop"])
        service = captured["runtime"].service
        import uuid

        thread, _ = await captured["runtime"].threads.create(str(uuid.uuid4()), {}, None,
                                                              "raise")
        body = {"assistant_id": "noop", "input": {}}

        async def one(thread_id: str | None) -> None:
            run = await service.create(dict(body), thread_id=thread_id)
            result = await service.result(run["run_id"], None)
            if result.get("status") != "success":
                raise RuntimeError(result)

        for kind, thread_id in (("stateful", thread["thread_id"]), ("stateless", None)):
            for _ in range(20):
                await one(thread_id)
            rounds = []
            for _ in range(args.rounds):
                c0 = time.process_time()
                for _ in range(args.runs):
                    await one(thread_id)
                rounds.append((time.process_time() - c0) / args.runs * 1e3)
            spent.clear()
            c0 = time.process_time()
            for _ in range(args.runs):
                await one(thread_id)
            total = (time.process_time() - c0) / args.runs * 1e3
            parts = {k: v / args.runs * 1e3 for k, v in spent.items()}
            parts["(rest: HTTP-less glue, queue, worker, background actors)"] = (
                total - sum(parts.values()))
            out[f"{kind}_cpu_ms"] = median(rounds)
            out[f"{kind}_rounds_ms"] = rounds
            out[f"{kind}_breakdown_ms"] = parts
            print(f"   {kind}: {median(rounds):.2f} ms CPU/run (rounds "
                  f"{', '.join(f'{r:.2f}' for r in rounds)}); one more round, timed by step "
                  f"({total:.2f} ms/run):", flush=True)
            for k, v in parts.items():
                print(f"      {v:6.2f} ms  {k}", flush=True)
        nursery.cancel_scope.cancel()
    return out


def _instrument() -> dict[str, float]:
    """CPU spent inside the run path's steps. Runs are sequential, so the process's CPU
    during a step's await is that step's (plus the idle actors', which is small)."""
    from aegra.adapters.langgraph.runner import LangGraphRunner
    from aegra.adapters.postgres.runs import PgRuns
    from aegra.services.runs import RunService

    spent: dict[str, float] = {}
    steps = [(RunService, "assistant", "RunService.assistant (2 lookups)"),
             (PgRuns, "create", "PgRuns.create (transaction)"),
             (PgRuns, "claim", "PgRuns.claim (transaction)"),
             (LangGraphRunner, "execute", "LangGraphRunner.execute (graph + checkpoints)"),
             (PgRuns, "finish", "PgRuns.finish (transaction)"),
             (RunService, "after_finish", "RunService.after_finish (broker, cleanup)")]
    for cls, name, label in steps:
        original = getattr(cls, name)

        def wrap(original: Any = original, label: str = label) -> Any:
            async def timed(*a: Any, **kw: Any) -> Any:
                c0 = time.process_time()
                try:
                    return await original(*a, **kw)
                finally:
                    spent[label] = spent.get(label, 0.0) + time.process_time() - c0
            return timed
        setattr(cls, name, wrap())
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", help="an existing PostgreSQL; default: embedded")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    with Postgres(args.database_url) as pg, tempfile.TemporaryDirectory() as wd:
        dsn = pg.create_database("aegra_inproc")
        (Path(wd) / "aegra.json").write_text(json.dumps({"graphs": {
            "noop": f"{BENCH / 'graphs.py'}:noop", "stream": f"{BENCH / 'graphs.py'}:stream"}}))
        from aegra import config, logs
        from aegra import project as project_mod

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AEGRA_", "POSTGRES_"))}
        env.update({"DATABASE_URL": dsn, "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING",
                    "WORKER_COUNT": "1", "N_JOBS_PER_WORKER": "10"})
        cfg = config.load(None, environ=env, cli={"server.port": 0,
                                                  "server.host": "127.0.0.1"}).config
        project = project_mod.load(Path(wd) / "aegra.json")
        logs.setup(cfg.log.level, cfg.log.format)
        print("== in-process run path (no HTTP), no-op runs; the stateless breakdown "
              "overlaps (after_finish deletes the thread while the next run starts)",
              flush=True)
        result = trio.run(drive, cfg, project, args)
    print(json.dumps({k: round(v, 2) for k, v in result.items() if isinstance(v, float)},
                     indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
