"""TTL sweeper actor (every instance): applies thread TTLs and ``checkpointer.ttl``.

Owns nothing but its schedule. At start it writes the deployment's default TTL
(``checkpointer.ttl.default_ttl``, or removes it) where the thread-creation trigger reads
it, then calls ``started()``: new threads get the default from then on, and a backlog
of expired threads never delays readiness. Then, every ``interval_s``, a sweep: batches
of at most ``batch_size`` expired threads, each claimed with SKIP LOCKED and handled in
one short transaction (``adapters/postgres/ttl.py``), with a rest between batches so a
long backlog leaves room for live traffic (at least ``pause_s``, and long enough that
transactions take at most ``max_duty`` of the sweeper's time); a batch that is not full
ends the sweep. Sweepers on several instances skip each other's rows: no double work.

Each sweep reports its totals to ``on_swept`` (metrics) and logs ``ttl.sweep``. A
``StoreUnavailable`` during a sweep ends that sweep only (the next one retries: sweeping
is idempotent); one at start goes to the restart policy, which waits the outage out.
Cancelled: the batch in flight is abandoned and its transaction rolls back. Restartable.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NoReturn

import trio

from aegra import logs
from aegra.adapters.postgres.pool import PgPool
from aegra.adapters.postgres.ttl import PgThreadSweeps
from aegra.config import Config
from aegra.domain import ttl
from aegra.domain.errors import StoreUnavailable
from aegra.domain.ttl import SweepTotals, ThreadSweeps, TtlDefault, interval_s, more_to_do
from aegra.project import Project
from aegra.supervisor.policy import ActorSpec

log = logs.get_logger("aegra.sweeper")

OnSwept = Callable[[SweepTotals], None]


async def sweep_once(sweeps: ThreadSweeps, *, batch_size: int, pause_s: float,
                     max_duty: float = 1.0,
                     on_swept: OnSwept = lambda totals: None) -> SweepTotals:
    """One sweep: batches until one is not full, resting between them (``ttl.pause_s``)."""
    totals = SweepTotals()
    t0 = trio.current_time()
    try:
        while True:
            b0 = trio.current_time()
            batch = await sweeps.sweep_batch(batch_size)
            totals.add(batch)
            if not more_to_do(batch, batch_size):
                break
            await trio.sleep(ttl.pause_s(trio.current_time() - b0, max_duty=max_duty,
                                         min_pause_s=pause_s))
    finally:
        # Committed batches count even when an outage or a cancel ends the sweep early.
        on_swept(totals)
        # One line per sweep; at info only when it did something (an idle sweep every
        # few minutes on every instance is noise).
        level = log.info if totals.deleted or totals.pruned else log.debug
        level("ttl.sweep", threads_deleted=totals.deleted, threads_pruned=totals.pruned,
              checkpoints=totals.checkpoints, runs=totals.runs, crons=totals.crons,
              batches=totals.batches, duration_s=round(trio.current_time() - t0, 3))
    return totals


async def run_sweeper(sweeps: ThreadSweeps, *, default: TtlDefault | None,
                      interval_s: float, batch_size: int, pause_s: float,
                      max_duty: float = 1.0, on_swept: OnSwept = lambda totals: None,
                      task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                      ) -> NoReturn:
    await sweeps.set_default(default)
    task_status.started()
    while True:
        try:
            await sweep_once(sweeps, batch_size=batch_size, pause_s=pause_s,
                             max_duty=max_duty, on_swept=on_swept)
        except StoreUnavailable as exc:
            log.warning("ttl.sweep_unavailable", error=str(exc))
        await trio.sleep(interval_s)


def sweeper_specs(cfg: Config, project: Project, pg: PgPool,
                  on_swept: OnSwept) -> list[ActorSpec]:
    """The sweeper of one instance (none when ``[sweeper] enabled = false``)."""
    if not cfg.sweeper.enabled:
        return []
    project_ttl = project.checkpointer.ttl
    default = None
    if project_ttl is not None and project_ttl.default_ttl is not None:
        default = TtlDefault(strategy=project_ttl.strategy,
                             ttl_minutes=project_ttl.default_ttl)
    every = interval_s(project_ttl.sweep_interval_minutes if project_ttl else None,
                       cfg.sweeper.interval_s)
    sw = cfg.sweeper
    return [ActorSpec("ttl-sweeper", partial(
        run_sweeper, PgThreadSweeps(pg), default=default, interval_s=every,
        batch_size=sw.batch_size, pause_s=sw.pause_s, max_duty=sw.max_duty,
        on_swept=on_swept))]
