"""Ring 1: the capacity actor under MockClock: grows with demand while the loop answers
promptly (whatever the CPU), shrinks under loop lag, or CPU pressure the loop has started
to feel, never leaves [floor, ceiling]."""

from __future__ import annotations

from functools import partial

import trio
import trio.testing

from aegra.domain.capacity import CapacityRule, Load, next_size
from aegra.runtime.capacity import Capacity
from aegra.supervisor.capacity import run_capacity

RULE = CapacityRule(floor=2, ceiling=9, lag_high_s=0.1, cpu_high=0.8)


def test_rule_grows_only_with_demand_and_a_prompt_loop() -> None:
    calm = Load(lag_s=0.0, cpu=0.1, saturated=True)
    assert next_size(RULE, 2, calm) == 4  # doubling
    assert next_size(RULE, 6, calm) == 9 and next_size(RULE, 9, calm) == 9  # the ceiling
    assert next_size(RULE, 4, Load(lag_s=0.0, cpu=0.1, saturated=False)) == 4
    # A busy CPU alone does not hold runs back: the loop still answers in time.
    assert next_size(RULE, 4, Load(lag_s=0.0, cpu=0.95, saturated=True)) == 8
    # Lag between half and the whole threshold: hold (no flapping), CPU under its own.
    assert next_size(RULE, 4, Load(lag_s=0.07, cpu=0.1, saturated=True)) == 4
    assert next_size(RULE, 4, Load(lag_s=0.06, cpu=0.75, saturated=True)) == 4


def test_rule_shrinks_under_pressure_down_to_the_floor() -> None:
    assert next_size(RULE, 8, Load(lag_s=0.2, cpu=0.1, saturated=True)) == 6
    # A busy CPU the loop has started to feel (lag at half the threshold).
    assert next_size(RULE, 8, Load(lag_s=0.05, cpu=0.9, saturated=True)) == 6
    assert next_size(RULE, 2, Load(lag_s=5.0, cpu=2.0, saturated=True)) == 2
    assert not CapacityRule(floor=10, ceiling=10).adaptive


class FakeCpu:
    """Process CPU seconds that advance at ``rate`` cores of the mock clock."""

    def __init__(self) -> None:
        self.rate = 0.0
        self.spent = 0.0
        self.at = 0.0

    def __call__(self) -> float:
        now = trio.current_time()
        self.spent += (now - self.at) * self.rate
        self.at = now
        return self.spent


async def _hold_all(limiter: trio.CapacityLimiter, release: trio.Event) -> None:
    async with limiter:
        await release.wait()


async def test_actor_follows_demand_lag_and_cpu(autojump_clock: trio.testing.MockClock
                                                ) -> None:
    capacity = Capacity(RULE.floor)
    limiters = [capacity.limiter(), capacity.limiter()]
    cpu = FakeCpu()
    totals: list[int] = []
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(run_capacity, RULE, capacity, interval_s=1.0,
                                    cpu_seconds=cpu, on_size=totals.append))
        assert totals == [4]  # two loops at the floor
        await trio.sleep(3.5)  # no demand: nothing to grow for
        assert capacity.size == 2
        for _ in range(40):  # more runs than the ceiling: a worker always waits
            nursery.start_soon(_hold_all, limiters[0], release)
        await trio.sleep(5)
        assert capacity.size == RULE.ceiling
        assert [lim.total_tokens for lim in limiters] == [9, 9] and totals[-1] == 18
        capacity.observe_lag(0.5)  # the loop stalled once: back off by a quarter
        await trio.sleep(1)
        assert capacity.size == 6
        cpu.rate = 0.95  # the runs burn a core, and the loop starts to feel it
        for _ in range(6):  # down to the floor and no lower
            capacity.observe_lag(0.06)
            await trio.sleep(1)
        assert capacity.size == RULE.floor and limiters[1].total_tokens == RULE.floor
        await trio.sleep(1.5)  # still a busy core, but the loop answers promptly again
        assert capacity.size > RULE.floor  # and runs are still waiting: grow
        release.set()
        nursery.cancel_scope.cancel()
    assert min(totals) >= 2 * RULE.floor and max(totals) <= 2 * RULE.ceiling


async def test_workers_that_restart_keep_the_current_size() -> None:
    capacity = Capacity(3)
    first = capacity.limiter()
    capacity.resize(7)
    capacity.forget(first)
    assert capacity.limiter().total_tokens == 7 and capacity.total == 7
