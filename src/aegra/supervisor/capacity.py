"""Capacity actor: sizes the worker loops' limiters to what the process can carry.

Owns the size of every worker's ``CapacityLimiter`` (``runtime.capacity.Capacity``).
Every ``interval_s`` it reads the worst loop lag the watchdog saw, the process CPU spent
per wall second, and whether a worker waited for a slot, and applies
``domain.capacity.next_size`` (grow while calm and in demand, shrink under lag or CPU
pressure, never outside floor and ceiling). Logs each change; ``on_size`` reports the
process's total slots (the ``aegra_worker_capacity`` gauge). Calls ``started()`` at once
(the limiters start at the floor). Cancelled: returns at once; the sizes stay as they
are. Restartable. Not started when the ceiling is the floor (fixed capacity).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NoReturn

import trio

from aegra.domain.capacity import CapacityRule, Load, next_size
from aegra.logs import get_logger
from aegra.runtime.capacity import Capacity

log = get_logger("aegra.capacity")


async def run_capacity(rule: CapacityRule, capacity: Capacity, *, interval_s: float = 1.0,
                       cpu_seconds: Callable[[], float] = time.process_time,
                       on_size: Callable[[int], None] = lambda total: None,
                       task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                       ) -> NoReturn:
    on_size(capacity.total)
    task_status.started()
    before, cpu_before = trio.current_time(), cpu_seconds()
    capacity.take_lag()  # lag from before we looked is not ours to act on
    while True:
        await trio.sleep(interval_s)
        now, cpu_now = trio.current_time(), cpu_seconds()
        load = Load(lag_s=capacity.take_lag(), saturated=capacity.saturated(),
                    cpu=(cpu_now - cpu_before) / max(now - before, 1e-6))
        before, cpu_before = now, cpu_now
        size = next_size(rule, capacity.size, load)
        if size != capacity.size:
            log.info("capacity.resized", per_worker=size, was=capacity.size,
                     lag_s=round(load.lag_s, 4), cpu=round(load.cpu, 2),
                     saturated=load.saturated)
            capacity.resize(size)
        on_size(capacity.total)
