"""The worker loops' capacity limiters, resized together by the capacity actor.

Each worker loop keeps its own ``trio.CapacityLimiter`` (made here, at the current size);
``resize`` sets every limiter's ``total_tokens``. Raising it wakes waiting workers at
once; lowering it below what is borrowed takes nothing away from running runs, it only
holds back new ones until enough finish. Trio only, no I/O.
"""

from __future__ import annotations

import trio


class Capacity:
    def __init__(self, size: int) -> None:
        self.size = size
        self.limiters: list[trio.CapacityLimiter] = []
        self._worst_lag_s = 0.0

    def limiter(self) -> trio.CapacityLimiter:
        """A worker loop's limiter (a restarted worker gets a fresh one)."""
        limiter = trio.CapacityLimiter(self.size)
        self.limiters.append(limiter)
        return limiter

    def forget(self, limiter: trio.CapacityLimiter) -> None:
        self.limiters.remove(limiter)

    def resize(self, size: int) -> None:
        self.size = size
        for limiter in self.limiters:
            limiter.total_tokens = size

    @property
    def total(self) -> int:
        """Slots of the whole process: what ``aegra_worker_capacity`` reports."""
        return self.size * len(self.limiters)

    def saturated(self) -> bool:
        """A worker loop waits for a slot: there is work it could take."""
        return any(limiter.statistics().tasks_waiting for limiter in self.limiters)

    def observe_lag(self, lag_s: float) -> None:
        """The watchdog's measurements, kept at their worst until the actor takes them."""
        self._worst_lag_s = max(self._worst_lag_s, lag_s)

    def take_lag(self) -> float:
        lag, self._worst_lag_s = self._worst_lag_s, 0.0
        return lag
