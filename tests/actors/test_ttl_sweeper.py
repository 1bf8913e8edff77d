"""Ring 1: the TTL sweeper's timing under MockClock, on the in-memory twin."""

from __future__ import annotations

from functools import partial

import trio
import trio.testing

from aegra.adapters.memory.ttl import MemoryThreadSweeps, MemThread
from aegra.domain.ttl import SweepTotals, TtlDefault
from aegra.supervisor.sweeper import run_sweeper

EVERY, BATCH, PAUSE = 60.0, 100, 0.5


async def start(nursery, sweeps, swept=None, default=None):
    await nursery.start(partial(
        run_sweeper, sweeps, default=default, interval_s=EVERY, batch_size=BATCH,
        pause_s=PAUSE, on_swept=(swept.append if swept is not None else lambda t: None)))


async def test_started_after_default_written_and_sweeps_on_schedule(autojump_clock):
    sweeps = MemoryThreadSweeps()
    sweeps.threads = {"soon": MemThread(expires_at=30.0), "later": MemThread(expires_at=90.0),
                      "never": MemThread(expires_at=None)}
    swept: list[SweepTotals] = []
    async with trio.open_nursery() as nursery:
        await start(nursery, sweeps, swept, default=TtlDefault(ttl_minutes=5))
        assert sweeps.default == TtlDefault(ttl_minutes=5)  # before started() returned
        await trio.sleep(EVERY - 1)
        assert "soon" in sweeps.threads  # expired at 30, but the next sweep is at 60
        await trio.sleep(2)
        assert set(sweeps.threads) == {"later", "never"}
        await trio.sleep(EVERY)
        assert set(sweeps.threads) == {"never"}
        nursery.cancel_scope.cancel()
    assert [t for t, _ in sweeps.batches] == [0.0, EVERY, 2 * EVERY]
    assert [s.deleted for s in swept] == [0, 1, 1]


async def test_backlog_goes_in_bounded_batches_with_pauses(autojump_clock):
    sweeps = MemoryThreadSweeps()
    sweeps.threads = {f"t{i}": MemThread(expires_at=-1.0, checkpoints=3) for i in range(250)}
    swept: list[SweepTotals] = []
    async with trio.open_nursery() as nursery:
        await start(nursery, sweeps, swept)
        await trio.sleep(EVERY / 2)
        nursery.cancel_scope.cancel()
    assert sweeps.batches == [(0.0, 100), (PAUSE, 100), (2 * PAUSE, 50)]  # batches take 0 s
    assert not sweeps.threads
    assert (swept[0].deleted, swept[0].checkpoints, swept[0].batches) == (250, 750, 3)


async def test_busy_or_running_thread_waits_for_its_run(autojump_clock):
    sweeps = MemoryThreadSweeps()
    sweeps.threads = {"busy": MemThread(expires_at=0.0, busy=True, active_run=True),
                      "queued": MemThread(expires_at=0.0, active_run=True)}
    async with trio.open_nursery() as nursery:
        await start(nursery, sweeps)
        await trio.sleep(EVERY * 3 + 1)
        assert set(sweeps.threads) == {"busy", "queued"}
        # the run ends; as in PostgreSQL its end is activity, restarting the clock
        for t in sweeps.threads.values():
            t.busy = t.active_run = False
            t.expires_at = trio.current_time() + 10
        await trio.sleep(EVERY)
        assert not sweeps.threads
        nursery.cancel_scope.cancel()


async def test_keep_latest_prunes_and_keeps_the_thread(autojump_clock):
    sweeps = MemoryThreadSweeps()
    sweeps.threads = {"k": MemThread(expires_at=0.0, strategy="keep_latest", checkpoints=5)}
    swept: list[SweepTotals] = []
    async with trio.open_nursery() as nursery:
        await start(nursery, sweeps, swept)
        await trio.sleep(EVERY * 2 + 1)
        nursery.cancel_scope.cancel()
    assert sweeps.threads["k"].checkpoints == 1 and sweeps.threads["k"].expires_at is None
    assert [(s.pruned, s.checkpoints) for s in swept] == [(1, 4), (0, 0), (0, 0)]


async def test_outage_skips_a_sweep_without_crashing(autojump_clock):
    sweeps = MemoryThreadSweeps()
    sweeps.threads = {"x": MemThread(expires_at=10.0)}
    async with trio.open_nursery() as nursery:
        await start(nursery, sweeps)
        sweeps.down = True
        await trio.sleep(EVERY + 1)
        assert "x" in sweeps.threads  # the sweep at 60 met the outage
        sweeps.down = False
        await trio.sleep(EVERY)
        assert not sweeps.threads  # the actor lived on and the next sweep did it
        nursery.cancel_scope.cancel()


class SlowSweeps(MemoryThreadSweeps):
    """Each batch takes 1 s of (mock) time: a batch of heavy threads."""

    async def sweep_batch(self, limit):
        await trio.sleep(1.0)
        return await super().sweep_batch(limit)


async def test_rest_after_a_heavy_batch_keeps_the_duty_cycle(autojump_clock):
    sweeps = SlowSweeps()
    sweeps.threads = {f"t{i}": MemThread(expires_at=-5.0) for i in range(25)}
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(run_sweeper, sweeps, default=None, interval_s=EVERY,
                                    batch_size=10, pause_s=PAUSE, max_duty=0.2))
        await trio.sleep(EVERY / 2)
        nursery.cancel_scope.cancel()
    # 1 s in a batch, then 4 s of rest: at most 20 % of the time in transactions
    assert [t for t, _ in sweeps.batches] == [1.0, 6.0, 11.0]
