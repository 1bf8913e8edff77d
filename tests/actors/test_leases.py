"""Ring 1: workers, heartbeater and reaper with in-memory adapters under MockClock."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

from aegra.adapters.memory.broker import MemoryBroker
from aegra.adapters.memory.queue import MemoryQueue
from aegra.adapters.memory.runs import MemoryRunStore
from aegra.api.metrics import Metrics
from aegra.domain.ports import Outcome
from aegra.runtime.capacity import Capacity
from aegra.runtime.registry import RunRegistry
from aegra.supervisor.heartbeat import run_heartbeater
from aegra.supervisor.policy import ActorSpec, RestartPolicy
from aegra.supervisor.reaper import run_reaper
from aegra.supervisor.root import Supervisor
from aegra.supervisor.worker import WorkerDeps, run_worker

LEASE, BEAT, REAP = 30.0, 10.0, 15.0


class RecordingQueue(MemoryQueue):
    def __init__(self) -> None:
        super().__init__()
        self.puts: list[tuple[str, bool, float]] = []

    async def put(self, run_id: str, *, front: bool = False, delay_s: float = 0.0) -> None:
        self.puts.append((run_id, front, trio.current_time()))
        await super().put(run_id, front=front, delay_s=delay_s)


class ScriptedRunner:
    """Each execution sleeps ``seconds``; records starts and cancellations."""

    def __init__(self, seconds: float, finished: bool = False) -> None:
        self.seconds = seconds
        self.starts: list[tuple[str, int, float]] = []
        self.cancelled: list[tuple[str, float]] = []
        self.done_already = finished

    async def execute(self, claimed, producer):
        self.starts.append((claimed.run_id, claimed.attempt, trio.current_time()))
        try:
            await trio.sleep(self.seconds)
        except trio.Cancelled:
            self.cancelled.append((claimed.run_id, trio.current_time()))
            raise
        return Outcome(status="success", values={"ok": True}), {"ok": True}, {}

    async def finished(self, graph_id, thread_id, run_id):
        return (True, {"ok": "from checkpoint"}) if self.done_already else (False, None)


class HangingLeases:
    """A lease store whose heartbeats never get through (a partitioned instance)."""

    def __init__(self, inner: MemoryRunStore) -> None:
        self.inner = inner

    async def extend(self, owner, run_ids, lease_s):
        await trio.sleep_forever()


def worker_deps(store, queue, runner, registry, owner, intake=None):
    finished: list[tuple[str, str]] = []

    async def after_finish(claimed, outcome, next_run):
        finished.append((claimed.run_id, outcome.status))
        if next_run:
            await queue.put(next_run)

    deps = WorkerDeps(queue=queue, runs=store, runner=runner, broker=MemoryBroker(),
                      registry=registry, owner=owner, lease_s=LEASE, job_timeout_s=3600,
                      intake_stopped=intake if intake is not None else trio.Event(),
                      after_finish=after_finish)
    return deps, finished


async def _noop_settled(run, status):
    return None


def reaper(store, queue, runner, max_retries=3, settled=_noop_settled):
    return partial(run_reaper, store, queue, runner.finished, settled, interval_s=REAP,
                   max_retries=max_retries, stuck_pending_s=1000)


async def test_expired_lease_is_requeued_at_the_head_on_the_first_tick_after_expiry(
        autojump_clock):
    store, queue, runner = MemoryRunStore(), RecordingQueue(), ScriptedRunner(5)
    store.add("backlog-1", "t1")
    store.add("r1", "t2")
    await queue.put("backlog-1")
    assert await store.claim("r1", "dead-instance", LEASE)  # claimed, then the instance died
    async with trio.open_nursery() as nursery:
        await nursery.start(reaper(store, queue, runner))  # passes at 0, 15, 30, 45 ...
        await trio.sleep(44.9)
        assert [p for p in queue.puts if p[0] == "r1"] == []
        await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    assert ("r1", True, 45) in queue.puts  # lease ended at 30; 30 is not past 30
    assert await queue.get() == "r1"  # ahead of the backlog
    assert store.runs["r1"].status == "pending" and store.runs["r1"].retries == 1


async def test_heartbeats_keep_a_long_run_alive(autojump_clock):
    store, queue, runner = MemoryRunStore(), RecordingQueue(), ScriptedRunner(100)
    registry = RunRegistry()
    deps, finished = worker_deps(store, queue, runner, registry, "A")
    store.add("long")
    await queue.put("long")
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(run_heartbeater, store, registry, owner="A",
                                    lease_s=LEASE, interval_s=BEAT))
        await nursery.start(reaper(store, queue, runner))
        await nursery.start(run_worker, deps, Capacity(1))
        await trio.sleep(150)
        nursery.cancel_scope.cancel()
    assert runner.starts == [("long", 1, 0)]
    assert finished == [("long", "success")]
    assert store.runs["long"].writes == ["A"] and store.runs["long"].retries == 0


async def test_retries_exhausted_fails_the_run_with_a_message(autojump_clock):
    store, queue, runner = MemoryRunStore(), RecordingQueue(), ScriptedRunner(1)
    store.add("doomed")
    settled: list[tuple[str, str]] = []

    async def on_settled(run, status):
        settled.append((run.run_id, status))

    async with trio.open_nursery() as nursery:
        await nursery.start(reaper(store, queue, runner, max_retries=2, settled=on_settled))
        for n in range(3):  # every instance that takes it dies at once
            while not await store.claim("doomed", f"dead-{n}", LEASE):
                await trio.sleep(1)
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    run = store.runs["doomed"]
    assert run.status == "error" and run.retries == 2
    assert "BG_JOB_MAX_RETRIES" in run.error["message"]
    assert settled == [("doomed", "error")]


async def test_exhausted_run_whose_graph_finished_is_settled_as_success(autojump_clock):
    store, queue = MemoryRunStore(), RecordingQueue()
    runner = ScriptedRunner(1, finished=True)
    store.add("done-before-crash")
    assert await store.claim("done-before-crash", "dead", LEASE)
    async with trio.open_nursery() as nursery:
        await nursery.start(reaper(store, queue, runner, max_retries=0))
        await trio.sleep(50)
        nursery.cancel_scope.cancel()
    run = store.runs["done-before-crash"]
    assert run.status == "success" and run.output == {"ok": "from checkpoint"}


async def test_partitioned_worker_fences_itself_and_its_late_write_is_refused(autojump_clock):
    store, queue = MemoryRunStore(), RecordingQueue()
    slow, fast = ScriptedRunner(1000), ScriptedRunner(5)
    reg_a, reg_b = RunRegistry(), RunRegistry()
    deps_a, finished_a = worker_deps(store, queue, slow, reg_a, "A")
    deps_b, finished_b = worker_deps(store, queue, fast, reg_b, "B")
    store.add("r")
    await queue.put("r")
    async with trio.open_nursery() as nursery:
        await nursery.start(run_worker, deps_a, Capacity(1))
        nursery.start_soon(partial(run_heartbeater, HangingLeases(store), reg_a, owner="A",
                                   lease_s=LEASE, interval_s=BEAT))
        await trio.testing.wait_all_tasks_blocked()
        assert slow.starts == [("r", 1, 0)]
        await nursery.start(reaper(store, queue, fast))
        await nursery.start(run_worker, deps_b, Capacity(1))
        await trio.sleep(80)
        nursery.cancel_scope.cancel()
    # A could not confirm its lease: it stopped itself at lease - margin (30 - 2).
    assert slow.cancelled == [("r", 28)]
    assert finished_a == []
    # The lease ended at 30; the reaper's pass at 45 requeued it; B ran attempt 2.
    assert fast.starts == [("r", 2, 45)]
    assert finished_b == [("r", "success")] and store.runs["r"].writes == ["B"]
    from aegra.domain.ports import ClaimedRun

    stale = ClaimedRun(run_id="r", thread_id="t", assistant_id="a", attempt=1, params={},
                       metadata={}, stateless=False, user_id=None)
    assert await store.finish(stale, "A", Outcome(status="success"), None, {}) == (False, None)


async def test_drain_hands_the_run_back_without_spending_a_retry(autojump_clock):
    store, queue, runner = MemoryRunStore(), RecordingQueue(), ScriptedRunner(1000)
    sup = Supervisor(policy=RestartPolicy(jitter=0), drain_timeout_s=10)
    deps, finished = worker_deps(store, queue, runner, sup.registry, "A", sup.intake_stopped)
    store.add("r")
    await queue.put("r")
    heartbeat = partial(run_heartbeater, store, sup.registry, owner="A", lease_s=LEASE,
                        interval_s=BEAT)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sup.run, outer=[ActorSpec("heartbeater", heartbeat)],
                                    work=[ActorSpec("worker", partial(run_worker, deps,
                                                                      Capacity(1)))]))
        await trio.sleep(50)  # heartbeats keep the lease through a long run
        sup.request_shutdown()
    assert runner.cancelled == [("r", 60)]
    run = store.runs["r"]
    assert run.status == "pending" and run.retries == 0 and run.claimed_by is None
    assert queue.puts[-1] == ("r", True, 60)
    assert finished == []


async def test_crash_recovery_is_counted_by_the_recovering_instance(autojump_clock):
    """Operations §2.2: the reaper's recovery and the re-execution move the metrics of the
    instance that recovers the run, through the recorder callbacks the runtime wires."""
    metrics = Metrics()
    store, queue, runner = MemoryRunStore(), RecordingQueue(), ScriptedRunner(5)
    deps, finished = worker_deps(store, queue, runner, RunRegistry(), "B")
    deps.on_active = metrics.active_runs.set
    deps.on_claimed = metrics.run_claimed
    deps.on_finished = metrics.run_finished
    store.add("r1")
    assert await store.claim("r1", "dead-instance", LEASE)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(reaper(store, queue, runner),
                                    on_recovered=metrics.leases_recovered))
        await nursery.start(run_worker, deps, Capacity(1))
        await trio.sleep(60)  # lease ends at 30, reaped at 45, re-executed for 5 s
        nursery.cancel_scope.cancel()
    assert finished == [("r1", "success")] and runner.starts == [("r1", 2, 45)]
    sample = metrics.registry.get_sample_value
    assert sample("aegra_lease_recoveries_total") == 1
    assert sample("aegra_run_retries_total") == 1
    assert sample("aegra_runs_total", {"status": "success"}) == 1
    assert sample("aegra_run_duration_seconds_count") == 1
    assert sample("aegra_run_duration_seconds_sum") == pytest.approx(5)
    assert sample("aegra_run_queue_wait_seconds_count") == 0  # its wait was at attempt 1
    assert sample("aegra_active_runs") == 0


async def test_an_exhausted_run_is_a_recovery_but_not_a_retry(autojump_clock):
    metrics = Metrics()
    store, queue, runner = MemoryRunStore(), RecordingQueue(), ScriptedRunner(1)
    store.add("last-try")
    assert await store.claim("last-try", "dead", LEASE)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(reaper(store, queue, runner, max_retries=0),
                                    on_recovered=metrics.leases_recovered))
        await trio.sleep(50)
        nursery.cancel_scope.cancel()
    assert store.runs["last-try"].status == "error"
    assert metrics.registry.get_sample_value("aegra_lease_recoveries_total") == 1
    assert metrics.registry.get_sample_value("aegra_run_retries_total") == 0


class SlowLeases:
    """Heartbeats that take ``seconds`` and answer from the store as it is at the end (the
    statement saw the rows after runs finished meanwhile)."""

    def __init__(self, inner: MemoryRunStore, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    async def extend(self, owner, run_ids, lease_s):
        await trio.sleep(self.seconds)
        return await self.inner.extend(owner, run_ids, lease_s)


async def test_a_run_that_ends_during_a_heartbeat_has_not_lost_its_lease(autojump_clock,
                                                                         caplog):
    # The beat at 10 lists "r"; the run ends at 10.5, during the 1-second statement, so
    # the answer lacks it. That is the end of a run, not a lost lease: no warning.
    store, queue, runner = MemoryRunStore(), RecordingQueue(), ScriptedRunner(10.5)
    registry = RunRegistry()
    deps, finished = worker_deps(store, queue, runner, registry, "A")
    store.add("r")
    await queue.put("r")
    async with trio.open_nursery() as nursery:
        await nursery.start(run_worker, deps, Capacity(1))
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(partial(run_heartbeater, SlowLeases(store, 1.0), registry,
                                   owner="A", lease_s=LEASE, interval_s=BEAT))
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    assert finished == [("r", "success")]
    assert [r.getMessage() for r in caplog.records
            if r.getMessage().startswith("lease.")] == []
