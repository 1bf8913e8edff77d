"""Ring 1: a shutdown arriving while a ticker pass commits still queues what it committed.

The fake store commits at once and then takes a second of (mock) time to answer, the way
a COMMIT on the wire does; the ticker is cancelled in that second. Before the pass was
shielded, the cancellation reached the ticker after the commit and the run stayed
unqueued until the reaper's stuck-pending rule found it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
import trio.testing

from aegra.domain.crons import Fired
from aegra.domain.run_rows import Cancelled, Created
from aegra.supervisor.cron import TickerDeps, run_cron_ticker


class SlowCommitCrons:
    """Commits a run per pass, then answers after ``answer_s``."""

    def __init__(self, answer_s: float) -> None:
        self.answer_s = answer_s
        self.committed: list[str] = []

    async def fire_due(self, plan: Callable[[dict[str, Any]], Any], limit: int) -> Fired:
        run_id = f"run-{len(self.committed)}"
        self.committed.append(run_id)
        await trio.sleep(self.answer_s)
        return Fired(claimed=1, created=[Created(run={"run_id": run_id},
                                                 cancelled=Cancelled())])


class Queue:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def put(self, run_id: str, *, front: bool = False, delay_s: float = 0.0) -> None:
        self.ids.append(run_id)


async def _settle(cancelled: Cancelled) -> None:
    raise AssertionError("nothing was displaced")


def _deps(store: SlowCommitCrons, queue: Queue, **kw: Any) -> TickerDeps:
    return TickerDeps(crons=store, queue=queue, settle=_settle,  # type: ignore[arg-type]
                      intake_stopped=trio.Event(), interval_s=5.0, **kw)


async def test_cancelled_mid_commit_still_queues(autojump_clock: trio.testing.MockClock
                                                 ) -> None:
    store, queue = SlowCommitCrons(answer_s=1.0), Queue()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_cron_ticker, _deps(store, queue))
        await trio.sleep(0.5)  # the first pass has committed and waits for its answer
        assert store.committed == ["run-0"] and queue.ids == []
        nursery.cancel_scope.cancel()
    assert queue.ids == store.committed == ["run-0"]


async def test_a_pass_past_its_bound_is_abandoned(autojump_clock: trio.testing.MockClock
                                                  ) -> None:
    store, queue = SlowCommitCrons(answer_s=60.0), Queue()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_cron_ticker, _deps(store, queue, pass_s=2.0))
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    # the shutdown waited for the bound, not for the hung store; the reaper owns the rest
    assert trio.current_time() < 3.0
    assert store.committed == ["run-0"] and queue.ids == []
