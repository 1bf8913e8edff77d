"""Ring 1: actors wait out an unreachable store instead of crash-looping (MockClock).

Operations §1.4: with the database gone the process stays up. A ``StoreUnavailable`` is
retried with a capped backoff and never counts toward ``max_restarts``; any other
exception still does. ``Board.workers_health`` is what ``/health`` shows as ``workers``.
"""

from __future__ import annotations

from functools import partial

import pytest
import trio

from aegra.domain.errors import StoreUnavailable
from aegra.runtime.board import Board
from aegra.supervisor.policy import ActorSpec, CrashLoop, RestartPolicy
from aegra.supervisor.root import Supervisor
from tests.actors.test_supervisor import leaf

STRICT = RestartPolicy(max_restarts=2, window_s=60, backoff_initial_s=0.5, backoff_max_s=30,
                       jitter=0, outage_backoff_max_s=4)


class Store:
    """A store that is down until ``up`` is set; every failed call is recorded."""

    def __init__(self) -> None:
        self.up = False
        self.calls: list[float] = []

    async def call(self) -> None:
        self.calls.append(trio.current_time())
        if not self.up:
            raise StoreUnavailable("database unavailable: database \"x\" does not exist")


async def test_an_outage_is_waited_out_with_capped_backoff_and_never_a_crash_loop(
        autojump_clock):
    store = Store()

    async def reaper(*, task_status=trio.TASK_STATUS_IGNORED):
        await store.call()  # its first pass, before started() (as the real reaper)
        task_status.started()
        await trio.sleep_forever()

    sup = Supervisor(policy=STRICT, drain_timeout_s=1)
    board = sup.board
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(sup.run, work=[ActorSpec("reaper", reaper)]))
        await trio.sleep(30)  # far more than max_restarts failures: still supervised
        state = board.actors["reaper"]
        assert state.status == "waiting" and state.restarts == 0
        assert "does not exist" in (state.last_error or "")
        assert board.workers_health() == "degraded"
        store.up = True
        await trio.sleep(5)  # the next retry comes within one cap
        assert state.status == "running" and board.ready
        assert board.workers_health() == "healthy"
        sup.request_shutdown()
    # retries after 0.5, 1, 2, then the 4 s cap: 0, 0.5, 1.5, 3.5, 7.5, 11.5, ...
    assert store.calls[:6] == [0, 0.5, 1.5, 3.5, 7.5, 11.5]
    gaps = [b - a for a, b in zip(store.calls, store.calls[1:], strict=False)]
    assert max(gaps) == 4
    assert state.outages == len(store.calls) - 1 and state.restarts == 0


async def test_an_outage_after_start_is_waited_out_too(autojump_clock):
    store = Store()
    store.up = True

    async def ticker(*, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        while True:
            await store.call()
            await trio.sleep(1)

    sup = Supervisor(policy=STRICT, drain_timeout_s=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sup.run, work=[ActorSpec("cron-ticker", ticker)]))
        await trio.sleep(2.5)
        store.up = False
        await trio.sleep(60)
        assert sup.board.actors["cron-ticker"].status == "waiting"
        store.up = True
        await trio.sleep(5)
        assert sup.board.actors["cron-ticker"].status == "running"
        sup.request_shutdown()
    assert sup.board.actors["cron-ticker"].restarts == 0


async def test_other_errors_still_end_in_a_crash_loop_between_outages(autojump_clock):
    attempts: list[float] = []

    async def buggy(*, task_status=trio.TASK_STATUS_IGNORED):
        attempts.append(trio.current_time())
        task_status.started()
        if len(attempts) % 2:
            raise StoreUnavailable("database unavailable")
        raise ValueError("a bug in the actor")

    sup = Supervisor(policy=STRICT, drain_timeout_s=1)
    with pytest.raises(BaseException) as info:
        await sup.run(work=[ActorSpec("reaper", buggy)])
    crash = leaf(info.value)
    assert isinstance(crash, CrashLoop) and crash.actor == "reaper"
    assert isinstance(crash.__cause__, ValueError)
    state = sup.board.actors["reaper"]
    # outage, bug, outage, bug, outage, bug: the third bug (> max_restarts=2) is fatal
    assert len(attempts) == 6 and state.restarts == 3 and state.outages == 3
    assert state.status == "failed"


def test_workers_health_reads_the_board():
    board = Board()
    board.actor("worker-0").status = "running"
    assert board.workers_health() == "degraded"  # not every actor started yet
    board.ready = True
    assert board.workers_health() == "healthy"
    for status, expected in [("restarting", "degraded"), ("waiting", "degraded"),
                             ("failed", "unhealthy"), ("running", "healthy")]:
        board.actor("reaper").status = status
        assert board.workers_health() == expected, status
    board.draining = True
    assert board.workers_health() == "unhealthy"
