"""Heartbeater actor: keeps this instance's leases alive; fences runs it cannot keep.

Owns: the last time each running run's lease was confirmed. Calls ``started()`` after its
first heartbeat. Every ``heartbeat_interval_s`` it extends all leases in one statement,
under a deadline shorter than the lease; a run missing from the answer was taken from us
(``lease_lost``), and a run whose lease could not be confirmed for ``lease - margin`` is
cancelled locally without waiting to hear (self-fencing). Lives in the outer group, so
leases stay alive through the drain. Cancelled: returns at once. Restartable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NoReturn

import trio

from aegra import logs
from aegra.domain.errors import DomainError
from aegra.domain.leases import fence_margin, heartbeat_deadline
from aegra.domain.ports import LeaseStore
from aegra.runtime.registry import RunRegistry

log = logs.get_logger("aegra.heartbeat")


async def run_heartbeater(
    leases: LeaseStore,
    registry: RunRegistry,
    *,
    owner: str,
    lease_s: float,
    interval_s: float,
    on_beat: Callable[[list[str]], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    confirmed: dict[str, float] = {}
    margin = fence_margin(lease_s)
    first = True
    while True:
        ids = registry.ids()
        started = trio.current_time()
        # The moment each run must stop unless its lease is confirmed again.
        fence_at = {r: confirmed.get(r, registry.opened_at(r)) + lease_s - margin for r in ids}
        earliest = min(fence_at.values(), default=float("inf"))
        kept: dict[str, str | None] | None = None
        # Never wait on the database past a fence point: stopping on time is the point.
        with trio.move_on_after(min(heartbeat_deadline(interval_s, lease_s),
                                    max(0.0, earliest - started))):
            try:
                kept = await leases.extend(owner, ids, lease_s)
            except DomainError as exc:
                log.warning("heartbeat.failed", error=str(exc), runs=len(ids))
        now = trio.current_time()
        for run_id in ids:
            if kept is not None and run_id in kept:
                confirmed[run_id] = started  # the lease runs from before the statement
                action = kept[run_id]
                if action is not None:  # a cancel request that no bus delivered (yet)
                    registry.cancel(run_id, action)
            # A run missing from the answer may simply have ended while the statement
            # ran (its finish commits after it leaves the registry): only a run still
            # executing here has lost its lease.
            elif kept is not None:
                if registry.cancel(run_id, "lease_lost"):
                    log.warning("lease.lost", run_id=run_id)
            elif now >= fence_at[run_id]:
                if registry.cancel(run_id, "lease_lost"):
                    log.warning("lease.self_fenced", run_id=run_id)
        for run_id in [r for r in confirmed if r not in registry]:
            del confirmed[run_id]
        if on_beat is not None and ids:
            await on_beat(ids)
        if first:
            first = False
            task_status.started()
        wake = started + interval_s
        if kept is None:  # failing: come back by the next fence point, not a beat later
            wake = min(wake, min((t for t in fence_at.values() if t > now), default=wake))
        await trio.sleep_until(max(wake, trio.current_time()))
