"""The adaptive-capacity rule: how many runs a worker loop may hold at once.

Pure: the actor (``supervisor/capacity.py``) measures, this decides. The size stays
between ``floor`` (``N_JOBS_PER_WORKER``: the documented capacity stays a guaranteed
minimum) and ``ceiling`` (``N_JOBS_PER_WORKER_MAX``).

- **Shrink** (multiplicatively, to 3/4) when the loop lags past ``lag_high_s``, or when
  the process burns more than ``cpu_high`` of a core *and* the loop has started to feel
  it (lag at half the threshold): runs that compute are what the process cannot carry
  more of, and every run on the loop pays for the lag.
- **Grow** (doubling, at least one) when there is demand (a worker waits for a slot) and
  the loop answers promptly: lag under half of ``lag_high_s``. A busy CPU alone does not
  stop it: runs that wait on a model API or a tool cost little CPU each, and a busy
  process whose loop still answers in time is carrying them; holding them back only adds
  queueing (1,000 two-second streams: p99 21 s held back, 17 s admitted, 15.5 s
  LangGraph alone, ``bench/README.md``). The gap between half and the whole threshold
  keeps it from flapping.
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
    felt = load.lag_s >= rule.lag_high_s / 2  # the loop has started to answer late
    if load.lag_s > rule.lag_high_s or (felt and load.cpu > rule.cpu_high):
        return max(rule.floor, size * 3 // 4)
    if load.saturated and not felt:
        return min(rule.ceiling, max(size + 1, size * 2))
    return max(rule.floor, min(rule.ceiling, size))
