"""Worker actor: dequeue -> claim (lease) -> execute in the run's CancelScope -> finish.

Owns: a run nursery and a ``CapacityLimiter`` whose size the capacity actor sets
(``supervisor/capacity.py``: from ``N_JOBS_PER_WORKER`` up to ``N_JOBS_PER_WORKER_MAX``);
it dequeues only while it has capacity. Calls ``started()`` at once (the queue is ready
when it is built). When intake stops (drain) it stops dequeuing and keeps its runs until
the supervisor cancels the work group at the drain deadline; a run cancelled that way
hands itself back (pending, requeued at the front, no retry spent) in shielded, bounded
cleanup.
Cancelled from outside for one run (HTTP cancel, cancel bus, lease loss): that run's own
scope, registered in the RunRegistry, with the reason stored first. A failed *run* is an
outcome, not a crash; restartable like every actor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn

import trio

from aegra import logs
from aegra.domain.ports import (
    ClaimedRun,
    EventBroker,
    GraphRunner,
    JobQueue,
    Json,
    Outcome,
    RunClaims,
)
from aegra.runtime.capacity import Capacity
from aegra.runtime.registry import RunRegistry

log = logs.get_logger("aegra.worker")
CLEANUP_S = 10.0  # bound on must-finish writes (final status, hand-back)


@dataclass
class WorkerDeps:
    queue: JobQueue
    runs: RunClaims
    runner: GraphRunner
    broker: EventBroker
    registry: RunRegistry
    owner: str  # this instance's claim identity
    lease_s: float
    job_timeout_s: float
    intake_stopped: trio.Event
    after_finish: Callable[[ClaimedRun, Outcome, str | None], Awaitable[None]]
    on_active: Callable[[int], None] = lambda n: None
    # Metrics, as callbacks (the worker knows nothing of Prometheus): a run's queue wait at
    # its first claim; a final status this worker wrote, with the seconds since the claim.
    on_claimed: Callable[[float], None] = lambda wait_s: None
    on_finished: Callable[[str, float], None] = lambda status, seconds: None


async def run_worker(deps: WorkerDeps, capacity: Capacity, *,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> NoReturn:
    limiter = capacity.limiter()  # sized by the capacity actor from now on
    try:
        await _work(deps, limiter, task_status)
    finally:
        capacity.forget(limiter)


async def _work(deps: WorkerDeps, limiter: trio.CapacityLimiter,
                task_status: trio.TaskStatus[None]) -> NoReturn:
    async with trio.open_nursery() as runs:
        task_status.started()
        with trio.CancelScope() as intake:
            runs.start_soon(_cancel_when, deps.intake_stopped, intake)
            while True:
                token = object()
                await limiter.acquire_on_behalf_of(token)
                try:
                    run_id = await deps.queue.get()
                except BaseException:
                    limiter.release_on_behalf_of(token)
                    raise
                runs.start_soon(_execute, deps, run_id, limiter, token)
        await trio.sleep_forever()  # draining: keep in-flight runs until the deadline
    raise AssertionError("unreachable")


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _execute(deps: WorkerDeps, run_id: str, limiter: trio.CapacityLimiter,
                   token: object) -> None:
    try:
        claimed = await deps.runs.claim(run_id, deps.owner, deps.lease_s)
        if claimed is None:
            return  # another worker has it, or its thread is busy: normal and silent
        logs.run_id.set(claimed.run_id)
        logs.thread_id.set(claimed.thread_id)
        log.debug("run.claimed", attempt=claimed.attempt, owner=deps.owner)
        deps.on_active(len(deps.registry) + 1)
        if claimed.attempt == 1:  # a retry's wait would count its earlier executions
            deps.on_claimed(claimed.queue_wait_s)
        await _run_claimed(deps, claimed)
    except Exception as exc:  # our own failure around a run: log it, keep the worker
        log.error("run.internal_error", run_id=run_id, error=repr(exc), exc_info=exc)
    finally:
        limiter.release_on_behalf_of(token)
        deps.on_active(len(deps.registry))


async def _run_claimed(deps: WorkerDeps, claimed: ClaimedRun) -> None:
    began = trio.current_time()
    await deps.broker.reset(claimed.run_id)
    producer = deps.broker.producer(claimed.run_id)
    result: tuple[Outcome, object, Json] | None = None
    timed_out = False
    try:
        with deps.registry.open(claimed.run_id) as entry:
            with trio.move_on_after(deps.job_timeout_s) as timeout:
                result = await deps.runner.execute(claimed, producer)
            timed_out = timeout.cancelled_caught
    except trio.Cancelled:
        # Drain deadline or shutdown: give the run back so it resumes elsewhere now.
        with trio.move_on_after(CLEANUP_S, shield=True):
            if await deps.runs.release(claimed, deps.owner):
                await deps.queue.put(claimed.run_id, front=True)
                log.info("run.handed_back", attempt=claimed.attempt)
        raise
    if result is None:
        if entry.reason == "lease_lost":
            log.warning("run.fenced", attempt=claimed.attempt)
            return  # another worker owns it now: write nothing more
        if timed_out:
            message = f"run exceeded BG_JOB_TIMEOUT_SECS ({deps.job_timeout_s:g}s)"
            error = {"error": "TimeoutError", "message": message}
            result = (Outcome(status="timeout", error=error), None, {})
        else:
            result = (Outcome(status="interrupted", cancel_action=entry.reason), None, {})
    with trio.move_on_after(CLEANUP_S, shield=True):
        await deps.broker.drain(producer)  # the run's last events go out before its end
    outcome, values, interrupts = result
    if outcome.status == "fenced":
        log.warning("run.fenced_checkpoint", attempt=claimed.attempt)
        return  # a checkpoint write found the claim gone: another worker owns the run
    with trio.move_on_after(CLEANUP_S, shield=True):
        written, next_run = await deps.runs.finish(claimed, deps.owner, outcome, values,
                                                   interrupts)
        if not written:
            log.warning("run.fenced_at_finish", attempt=claimed.attempt)
            return
        if outcome.error is not None:  # why, for the operator (traceback: the runner, debug)
            log.warning("run.finished", status=outcome.status, attempt=claimed.attempt,
                        error=outcome.error.get("error"), message=outcome.error.get("message"))
        else:
            log.info("run.finished", status=outcome.status, attempt=claimed.attempt)
        deps.on_finished("cancelled" if outcome.cancel_action else outcome.status,
                         trio.current_time() - began)
        await deps.after_finish(claimed, outcome, next_run)
