"""Reaper actor (every instance): recovers runs whose worker was lost.

Owns nothing but its schedule. Calls ``started()`` after its first pass. Every
``reaper_interval_s``: expired leases (and runs left ``running`` with no lease) go back to
pending and to the *head* of the queue, so recovery never waits behind a backlog; runs
with no retries left are settled: ``success`` with their output when their last
checkpoint shows the graph finished, else ``error`` saying the retries are exhausted;
pending runs older than the stuck threshold are queued again. Concurrent reapers on
several instances are safe: each row is taken with SKIP LOCKED. Restartable. Each pass
reports to ``on_recovered`` (metrics) how many expired leases it took and how many of
those runs go to be executed again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NoReturn

import trio

from aegra import logs
from aegra.domain.leases import Expired, exhausted_message
from aegra.domain.ports import JobQueue, LeaseStore

log = logs.get_logger("aegra.reaper")

# (graph_id, thread_id, run_id) -> final values if this run's graph had finished, else None
Finished = Callable[[str | None, str, str], Awaitable[tuple[bool, object]]]
Recovered = Callable[[int, int], None]  # (expired leases taken, runs queued to run again)


async def reap_once(leases: LeaseStore, queue: JobQueue, finished: Finished,
                    on_settled: Callable[[Expired, str], Awaitable[None]], *,
                    max_retries: int, stuck_pending_s: float,
                    on_recovered: Recovered = lambda recovered, retried: None) -> int:
    result = await leases.reap(max_retries, stuck_pending_s)
    if result.requeue or result.exhausted:
        on_recovered(len(result.requeue) + len(result.exhausted), len(result.requeue))
    for run_id in result.requeue:
        await queue.put(run_id, front=True)
    for run_id in result.stuck:
        await queue.put(run_id)
    for run in result.exhausted:
        done, values = await finished(run.graph_id, run.thread_id, run.run_id)
        message = None if done else exhausted_message(run.retries)
        if await leases.settle(run, values if done else None, message):
            await on_settled(run, "success" if done else "error")
    count = len(result.requeue) + len(result.stuck) + len(result.exhausted)
    if count:
        log.info("reaper.pass", requeued=len(result.requeue), stuck=len(result.stuck),
                 settled=len(result.exhausted))
    return count


async def run_reaper(
    leases: LeaseStore, queue: JobQueue, finished: Finished,
    on_settled: Callable[[Expired, str], Awaitable[None]], *,
    interval_s: float, max_retries: int, stuck_pending_s: float,
    on_recovered: Recovered = lambda recovered, retried: None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    first = True
    while True:
        await reap_once(leases, queue, finished, on_settled, max_retries=max_retries,
                        stuck_pending_s=stuck_pending_s, on_recovered=on_recovered)
        if first:
            first = False
            task_status.started()
        await trio.sleep(interval_s)
