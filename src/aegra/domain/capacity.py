"""The adaptive-capacity rule: how many runs a worker loop may hold at once.

Pure: the actor (``supervisor/capacity.py``) measures, this decides. The size stays
between ``floor`` (``N_JOBS_PER_WORKER``: the documented capacity stays a guaranteed
minimum) and ``ceiling`` (``N_JOBS_PER_WORKER_MAX``).

- **Shrink** (multiplicatively, to 3/4) when the loop lags past ``lag_high_s`` or the
  process burns more than ``cpu_high`` of a core: runs that compute are what the process
  cannot carry more of, and every run on the loop pays for the lag.
- **Grow** (by half, at least one) only when there is demand (a worker waits for a slot)
  and the process is calm: lag under half of ``lag_high_s`` and CPU under
  ``cpu_high - 0.1``. Runs that wait on a model API cost neither, so they are what lets
  capacity grow; the gap between the two thresholds keeps it from flapping.
- Otherwise hold.
"""

from __future__ import annotations

import msgspec


class CapacityRule(msgspec.Struct, frozen=True, kw_only=True):
    floor: int
    ceiling: int
    lag_high_s: float = 0.1
    cpu_high: float = 0.85  # of one core

    @property
    def adaptive(self) -> bool:
        return self.ceiling > self.floor


class Load(msgspec.Struct, frozen=True, kw_only=True):
    """What the actor measured over one interval."""

    lag_s: float  # the worst loop lag seen
    cpu: float  # process CPU seconds per wall second
    saturated: bool  # a worker waited for a slot


def next_size(rule: CapacityRule, size: int, load: Load) -> int:
    if load.lag_s > rule.lag_high_s or load.cpu > rule.cpu_high:
        return max(rule.floor, size * 3 // 4)
    calm = load.lag_s < rule.lag_high_s / 2 and load.cpu < rule.cpu_high - 0.1
    if calm and load.saturated:
        return min(rule.ceiling, size + max(1, size // 2))
    return max(rule.floor, min(rule.ceiling, size))
